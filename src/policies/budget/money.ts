import type { Usage } from '../../core/usage.ts'
import type { ModelPrice } from '../../pricing/prices.ts'
import { mediaCostUsd } from '../../pricing/media.ts'
import { PriceTable } from '../../pricing/table.ts'

/** Budgets count integer micro-dollars: exact sums in any store, no float drift across millions of requests. */
export const MICROS_PER_USD = 1_000_000

/**
 * The cost of a usage in micro-dollars, rounded up (a budget never undercounts). Prices are USD per 1M
 * tokens, which is micro-dollars per token: uncached prompt at `input`, cached prompt at `cached` (input
 * when the table has none), completion at `output` (reasoning tokens are part of the completion count).
 */
export function costMicros(price: ModelPrice, usage: Usage): number {
  if (usage.media) return Math.max(0, Math.ceil(mediaCostUsd(price, usage, usage.media) * MICROS_PER_USD - 1e-6))
  const cached = Math.min(Math.max(0, usage.cachedTokens), usage.promptTokens)
  const uncached = usage.promptTokens - cached
  const v = uncached * price.input + cached * (price.cached ?? price.input) + usage.completionTokens * price.output + PriceTable.audioExtra(price, usage)
  // Float noise (0.1 * 3 = 0.30000000000000004) must not round a whole micro-dollar up.
  return Math.max(0, Math.ceil(v - 1e-6))
}

/** The worst case before the call: every prompt token uncached, the whole completion allowance used. */
export function estimateMicros(price: ModelPrice, promptTokens: number, completionTokens: number): number {
  return Math.max(0, Math.ceil(promptTokens * price.input + completionTokens * price.output - 1e-6))
}

export function usdText(micros: number): string {
  return (Math.max(0, micros) / MICROS_PER_USD).toFixed(6)
}
