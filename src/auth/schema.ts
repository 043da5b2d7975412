import { isIP } from 'node:net'
import { z } from 'zod'

/** `10.0.0.0/8`, `2001:db8::/32`, or a single address. */
const cidr = z.string().superRefine((v, ctx) => {
  const [addr, bits, extra] = v.trim().split('/')
  const family = isIP(addr ?? '')
  const max = family === 4 ? 32 : 128
  if (family === 0 || extra !== undefined || (bits !== undefined && !(/^\d{1,3}$/.test(bits) && Number(bits) <= max))) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not an address or CIDR range (e.g. 10.0.0.0/8, 2001:db8::/32)` })
  }
})

export const ipFilterSchema = z.strictObject({
  /** When given, only these ranges may call; an empty list admits nobody. */
  allow: z.array(cidr).optional(),
  /** Refused even when `allow` admits them. */
  deny: z.array(cidr).default([]),
  /**
   * Read the client address from `x-forwarded-for`: `true` trusts one proxy in front of the gateway, a
   * number that many. The address used is the one that many hops from the right, so a client cannot
   * choose it by sending its own header.
   */
  trustProxy: z.union([z.boolean(), z.number().int().min(0).max(16)]).default(false),
})
export type IpFilterConfig = z.infer<typeof ipFilterSchema>

/** A key's last moment of validity: an ISO date (`2026-12-31`, the end of that day UTC) or date-time. */
export const expiryDate = z.union([z.string(), z.date()]).transform((v, ctx) => {
  if (v instanceof Date) return v.getTime()
  const dateOnly = /^\d{4}-\d{2}-\d{2}$/.test(v.trim())
  const ms = Date.parse(dateOnly ? `${v.trim()}T23:59:59.999Z` : v)
  if (!Number.isFinite(ms)) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not a date (use 2026-12-31 or 2026-12-31T18:00:00Z)` })
    return z.NEVER
  }
  return ms
})
