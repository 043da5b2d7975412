import type { RequestContext } from '../core/context.ts'
import type { Usage } from '../core/usage.ts'

/**
 * How a cache policy tells the rest of the pipeline that it answered a request: `ctx.slots.get(CACHE_HIT)`.
 * Token limits read it: with `countHits: false` a hit's tokens are not charged (it cost no backend tokens);
 * with `countHits: true` (the default) they are charged as the cached usage, as if the backend had answered.
 * The Outcome of a hit carries `servedBy` = `cache:exact` / `cache:semantic` and the cached usage.
 */
export const CACHE_HIT: unique symbol = Symbol.for('sluice.cache.hit') as never

export interface CacheHit {
  /** The policy name: `cache` or `semantic-cache`. */
  readonly policy: string
  readonly kind: 'exact' | 'semantic'
  /** Whether token limits should count this hit's tokens. */
  readonly countHits: boolean
  /** The usage recorded with the cached answer. */
  readonly usage: Usage | null
  /** Cosine distance of the stored prompt (semantic hits only). */
  readonly distance: number | null
}

export function cacheHitOf(ctx: RequestContext): CacheHit | null {
  return (ctx.slots.get(CACHE_HIT) as CacheHit | undefined) ?? null
}

/** The `x-sluice-served-by` values (read into Outcome.servedBy by the proxy). */
export const SERVED_BY_EXACT = 'cache:exact'
export const SERVED_BY_SEMANTIC = 'cache:semantic'
