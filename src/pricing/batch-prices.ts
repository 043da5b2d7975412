import type { Usage } from '../core/usage.ts'
import { normaliseModel } from './table.ts'

/**
 * Batch prices in USD per 1M tokens: what the provider charges for a request run through its batch API
 * (OpenAI Batch API, Azure OpenAI Global Batch, Anthropic Message Batches). All of them bill batches at
 * 50 % of the standard list price, input and output alike (cached prompt tokens at half the cached price).
 *
 * Sources (checked 2026-12-01): OpenAI's pricing page, "Batch" column (platform.openai.com/docs/pricing;
 * e.g. gpt-4o $1.25 / $5.00, gpt-4o-mini $0.075 / $0.30, gpt-4.1 $1.00 / $4.00, as quoted by the public
 * pricing guides apicalculators.com "OpenAI Batch API Cost 2026" and tokenmix.ai "OpenAI Batch API Pricing",
 * which agree); Anthropic's pricing page, "Batch processing: 50% discount" (claude.com/pricing). Figures are
 * written out, not computed, so a change of one list price does not silently reprice batches.
 * `pricing.models.<m>.batch: { input, output }` in the config overrides or extends an entry.
 */
export interface BatchPrice {
  readonly input: number
  readonly output: number
  readonly cached?: number
}

export const SHIPPED_BATCH_PRICES: Readonly<Record<string, BatchPrice>> = {
  // OpenAI
  'gpt-4o': { input: 1.25, output: 5, cached: 0.625 },
  'gpt-4o-mini': { input: 0.075, output: 0.3, cached: 0.0375 },
  'gpt-4.1': { input: 1, output: 4, cached: 0.25 },
  'gpt-4.1-mini': { input: 0.2, output: 0.8, cached: 0.05 },
  'gpt-4.1-nano': { input: 0.05, output: 0.2, cached: 0.0125 },
  'gpt-5': { input: 0.625, output: 5, cached: 0.0625 },
  'gpt-5-mini': { input: 0.125, output: 1, cached: 0.0125 },
  'gpt-5-nano': { input: 0.025, output: 0.2, cached: 0.0025 },
  'gpt-5.4': { input: 1.25, output: 7.5, cached: 0.125 },
  'gpt-5.4-mini': { input: 0.375, output: 2.25, cached: 0.0375 },
  'gpt-5.4-nano': { input: 0.1, output: 0.625, cached: 0.01 },
  'text-embedding-3-small': { input: 0.01, output: 0 },
  'text-embedding-3-large': { input: 0.065, output: 0 },
  // Anthropic (Message Batches)
  'claude-haiku-4-5': { input: 0.5, output: 2.5, cached: 0.05 },
  'claude-sonnet-4': { input: 1.5, output: 7.5, cached: 0.15 },
  'claude-sonnet-4-5': { input: 1.5, output: 7.5, cached: 0.15 },
  'claude-opus-4-5': { input: 2.5, output: 12.5, cached: 0.25 },
}

/** The batch price of a model: the config's `pricing.models.<m>.batch` first, then the shipped table. */
export function batchPriceOf(model: string, overrides: Readonly<Record<string, { batch?: BatchPrice }>> = {}): BatchPrice | null {
  const lower = model.toLowerCase()
  const norm = normaliseModel(model)
  for (const [name, p] of Object.entries(overrides)) {
    const n = name.toLowerCase()
    if (p.batch && (n === lower || n === norm)) return p.batch
  }
  return SHIPPED_BATCH_PRICES[lower] ?? SHIPPED_BATCH_PRICES[norm] ?? null
}

/** USD of a usage at a batch price (cached prompt tokens at the cached batch price when one is given). */
export function batchCost(price: BatchPrice, usage: Usage): number {
  const cached = Math.min(usage.cachedTokens, usage.promptTokens)
  return ((usage.promptTokens - cached) * price.input + cached * (price.cached ?? price.input) + usage.completionTokens * price.output) / 1e6
}
