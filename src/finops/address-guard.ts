import { BlockList, isIP } from 'node:net'
import { lookup } from 'node:dns/promises'

/**
 * Which addresses webhooks may reach. By default only public unicast addresses: a webhook URL typed into
 * the config (or an admin API) must not become a way into the gateway's own network (SSRF). Ranges the
 * operator lists in `webhookDelivery.allow` are admitted on top (tests allow 127.0.0.0/8).
 */
export class AddressGuard {
  private readonly reserved = new BlockList()
  private readonly allowed = new BlockList()

  constructor(allow: readonly string[]) {
    for (const [net, bits, type] of RESERVED) this.reserved.addSubnet(net, bits, type)
    for (const a of allow) {
      const parsed = parseCidr(a)
      if (!parsed) throw new Error(`"${a}" is not an IP address or CIDR range`)
      this.allowed.addSubnet(parsed.net, parsed.bits, parsed.type)
    }
  }

  /** Whether one IP literal may be contacted. */
  permits(ip: string): boolean {
    const type = isIP(ip) === 6 ? 'ipv6' : 'ipv4'
    if (this.allowed.check(ip, type)) return true
    return !this.reserved.check(ip, type)
  }

  /**
   * Resolves a URL's host and checks every address it resolves to; returns the address to connect to
   * (pinned, so a second DNS answer cannot swap in a forbidden one) or throws with the reason.
   */
  async resolve(url: URL): Promise<string> {
    const host = url.hostname.replace(/^\[|\]$/g, '')
    const addrs = isIP(host) ? [host] : (await lookup(host, { all: true, verbatim: true })).map((a) => a.address)
    if (addrs.length === 0) throw new Error(`${host} does not resolve`)
    const bad = addrs.find((a) => !this.permits(a))
    if (bad !== undefined) throw new Error(`${host} resolves to ${bad}, an address webhooks may not reach (webhookDelivery.allow)`)
    return addrs[0]!
  }
}

/** `10.0.0.0/8`, `::1/128`, or a single address. */
export function parseCidr(text: string): { net: string; bits: number; type: 'ipv4' | 'ipv6' } | null {
  const [net, bitsText] = text.trim().split('/')
  const v = isIP(net ?? '')
  if (!v) return null
  const max = v === 4 ? 32 : 128
  const bits = bitsText === undefined ? max : Number(bitsText)
  if (!Number.isInteger(bits) || bits < 0 || bits > max) return null
  return { net: net!, bits, type: v === 4 ? 'ipv4' : 'ipv6' }
}

const RESERVED: readonly [string, number, 'ipv4' | 'ipv6'][] = [
  ['0.0.0.0', 8, 'ipv4'], ['10.0.0.0', 8, 'ipv4'], ['100.64.0.0', 10, 'ipv4'], ['127.0.0.0', 8, 'ipv4'],
  ['169.254.0.0', 16, 'ipv4'], ['172.16.0.0', 12, 'ipv4'], ['192.0.0.0', 24, 'ipv4'], ['192.168.0.0', 16, 'ipv4'],
  ['198.18.0.0', 15, 'ipv4'], ['224.0.0.0', 4, 'ipv4'], ['240.0.0.0', 4, 'ipv4'],
  ['::', 128, 'ipv6'], ['::1', 128, 'ipv6'], ['fc00::', 7, 'ipv6'], ['fe80::', 10, 'ipv6'], ['ff00::', 8, 'ipv6'], ['::ffff:0:0', 96, 'ipv6'],
]
