import { z } from 'zod'

/** `80%` or 80 → 80; thresholds from just above 0 up to 1000 % (alerting on overspend is allowed). */
export function parseThreshold(v: string | number): number | null {
  const n = typeof v === 'number' ? v : /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(v)?.[1]
  const pct = n === undefined ? NaN : Number(n)
  return Number.isFinite(pct) && pct > 0 && pct <= 1000 ? pct : null
}

/** The `alerts` option of budgets and token quotas: thresholds, each fired once per period to the log and a webhook. */
export const alertThresholds = z.array(z.strictObject({
  /** `80%`, or a number of percent (80). */
  at: z.union([z.string(), z.number()]).transform((v, ctx) => {
    const pct = parseThreshold(v)
    if (pct === null) { ctx.addIssue({ code: 'custom', message: `"${v}" is not a threshold (use 50%, 80%, 100%)` }); return z.NEVER }
    return pct
  }),
  webhook: z.string().min(1).optional(),
})).max(20).default([])
