import type { Usage } from '../core/usage.ts'
import { SHIPPED_PRICES, type ModelPrice } from './prices.ts'
import { mediaCostUsd } from './media.ts'

/**
 * Canonical name for price lookups: lower case, no provider prefix (`openai/`, `azure/`…), no dated
 * snapshot suffix (`gpt-4o-2024-08-06`, `claude-sonnet-4-20250514`) and no `-latest`.
 */
export function normaliseModel(name: string): string {
  let n = name.trim().toLowerCase()
  const slash = n.lastIndexOf('/')
  if (slash >= 0) n = n.slice(slash + 1)
  n = n.replace(/-(\d{4}-\d{2}-\d{2}|\d{8})$/, '').replace(/-latest$/, '')
  return n
}

/** The shipped prices merged with the config's overrides, looked up by normalised model name. */
export class PriceTable {
  private readonly prices = new Map<string, ModelPrice>()

  constructor(overrides: Readonly<Record<string, ModelPrice>> = {}, base: Readonly<Record<string, ModelPrice>> = SHIPPED_PRICES) {
    // Keys stay as written (lower-cased), so an override for one dated snapshot does not reprice the family.
    for (const [m, p] of Object.entries(base)) this.prices.set(m.toLowerCase(), p)
    for (const [m, p] of Object.entries(overrides)) this.prices.set(m.toLowerCase(), p)
  }

  /** The first of the candidate names (public name, then deployment name) that has a price: exact name first, then normalised. */
  priceOf(...candidates: readonly (string | null | undefined)[]): ModelPrice | null {
    for (const c of candidates) {
      if (!c) continue
      const p = this.prices.get(c.toLowerCase()) ?? this.prices.get(normaliseModel(c))
      if (p) return p
    }
    return null
  }

  /**
   * USD for one call: uncached prompt at input price, cached prompt at cached price, prompt written to the
   * cache at the cache-write price, completion (reasoning included) at output price.
   */
  static cost(price: ModelPrice, usage: Usage): number {
    if (usage.media) return mediaCostUsd(price, usage, usage.media)
    const cached = Math.min(usage.cachedTokens, usage.promptTokens)
    const writes = Math.min(usage.cacheWriteTokens ?? 0, usage.promptTokens - cached)
    const uncached = usage.promptTokens - cached - writes
    return (uncached * price.input + cached * (price.cached ?? price.input) + writes * (price.cacheWrite ?? price.input) + usage.completionTokens * price.output + PriceTable.audioExtra(price, usage)) / 1e6
  }

  /**
   * Realtime audio: what audio tokens cost beyond the text price they are already counted at above (USD per
   * 1M tokens × tokens). Zero without audio tokens or without audio prices (then audio is billed as text).
   */
  static audioExtra(price: ModelPrice, usage: Usage): number {
    const audioIn = Math.min(usage.audioPromptTokens ?? 0, usage.promptTokens)
    const audioOut = Math.min(usage.audioCompletionTokens ?? 0, usage.completionTokens)
    if (audioIn === 0 && audioOut === 0) return 0
    const audioCached = Math.min(usage.audioCachedTokens ?? 0, audioIn, usage.cachedTokens)
    const textCached = price.cached ?? price.input
    return (audioIn - audioCached) * ((price.audioInput ?? price.input) - price.input)
      + audioCached * ((price.audioCached ?? textCached) - textCached)
      + audioOut * ((price.audioOutput ?? price.output) - price.output)
  }
}
