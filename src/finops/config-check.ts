import { isIP } from 'node:net'
import type { GatewayConfig } from '../config/schema.ts'
import { AddressGuard, parseCidr } from './address-guard.ts'

type Report = (path: (string | number)[], message: string) => void

/**
 * Cross-references `sluice check` and every load run for the FinOps parts: ranges in
 * `webhookDelivery.allow` parse, a webhook whose host is an IP literal is one it may reach, ids are unique,
 * and every budget alert names a configured webhook.
 */
export function checkFinopsConfig(c: GatewayConfig, report: Report): void {
  c.webhookDelivery.allow.forEach((a, i) => {
    if (!parseCidr(a)) report(['webhookDelivery', 'allow', i], `"${a}" is not an IP address or CIDR range`)
  })
  let guard: AddressGuard | null = null
  try { guard = new AddressGuard(c.webhookDelivery.allow) } catch { /* reported above */ }
  const ids = new Set<string>()
  c.webhooks.forEach((w, i) => {
    if (ids.has(w.id)) report(['webhooks', i, 'id'], `duplicate webhook id "${w.id}"`)
    ids.add(w.id)
    const host = new URL(w.url).hostname.replace(/^\[|\]$/g, '')
    if (guard && isIP(host) && !guard.permits(host)) {
      report(['webhooks', i, 'url'], `${host} is a loopback, private or reserved address; webhooks may reach it only if webhookDelivery.allow lists it`)
    }
  })
  const lists: Array<[(string | number)[], GatewayConfig['policies']]> = [[['policies'], c.policies]]
  c.products.forEach((p, i) => lists.push([['products', i, 'policies'], p.policies]))
  for (const [base, list] of lists) {
    list.forEach((entry, i) => {
      for (const name of ['budget', 'token-limit']) {
        const opts = entry[name] as { alerts?: { webhook?: string }[] } | undefined
        opts?.alerts?.forEach((a, j) => {
          if (a.webhook !== undefined && !ids.has(a.webhook)) report([...base, i, name, 'alerts', j, 'webhook'], `unknown webhook "${a.webhook}" (define it under webhooks)`)
        })
      }
    })
  }
}
