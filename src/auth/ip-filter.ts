import { BlockList, isIP } from 'node:net'
import type { IpFilterConfig } from './schema.ts'

type Headers = Readonly<Record<string, string | string[] | undefined>>

/** `::ffff:10.1.2.3` (an IPv4 client on a dual-stack socket) is the IPv4 address it carries. */
function normalise(addr: string): string {
  const a = addr.trim()
  return a.toLowerCase().startsWith('::ffff:') && isIP(a.slice(7)) === 4 ? a.slice(7) : a
}

function blockListOf(ranges: readonly string[]): BlockList {
  const list = new BlockList()
  for (const r of ranges) {
    const [addr, bits] = r.trim().split('/') as [string, string | undefined]
    const family = isIP(addr) === 4 ? 'ipv4' : 'ipv6'
    if (bits === undefined) list.addAddress(addr, family)
    else list.addSubnet(addr, Number(bits), family)
  }
  return list
}

/** A product's allow/deny ranges, compiled once per snapshot. */
export class IpFilter {
  private readonly allow: BlockList | null
  private readonly deny: BlockList
  private readonly hops: number

  constructor(config: IpFilterConfig) {
    this.allow = config.allow ? blockListOf(config.allow) : null
    this.deny = blockListOf(config.deny)
    this.hops = config.trustProxy === true ? 1 : config.trustProxy === false ? 0 : config.trustProxy
  }

  /**
   * The client address: the socket's peer, or with `trustProxy: N` the address N hops from the right of
   * `x-forwarded-for` + peer. Entries further left were written by the client and prove nothing.
   */
  clientIp(remote: string, headers: Headers): string {
    if (this.hops === 0) return normalise(remote)
    const xff = headers['x-forwarded-for']
    const chain = (Array.isArray(xff) ? xff.join(',') : xff ?? '').split(',').map((s) => s.trim()).filter(Boolean)
    chain.push(remote)
    return normalise(chain[Math.max(0, chain.length - 1 - this.hops)]!)
  }

  admits(ip: string): boolean {
    const family = isIP(ip)
    if (family === 0) return false // an unparseable forwarded address is never admitted
    const type = family === 4 ? 'ipv4' : 'ipv6'
    if (this.deny.check(ip, type)) return false
    return this.allow === null || this.allow.check(ip, type)
  }
}
