import { z } from 'zod'
import { AnswerCapture, answerAsJson, answerAsStream, captureOnMiss, parseAnswer } from '../../cache/answer.ts'
import { CACHE_HIT, SERVED_BY_EXACT, type CacheHit } from '../../cache/hit.ts'
import { canonicalJson, exactKey } from '../../cache/request-key.ts'
import { sharedStore } from '../../cache/store-registry.ts'
import type { CacheStore } from '../../cache/types.ts'
import { duration } from '../../config/schema.ts'
import type { RequestContext } from '../../core/context.ts'
import type { Outcome, Policy, UpstreamResult } from '../../core/pipeline.ts'
import { MemoryCacheStore } from '../../stores/memory/cache.ts'
import { lazyCacheStore } from '../../cache/lazy-stores.ts'
import { celExpression, compileExpr, exprContext, exprString } from '../expr.ts'
import type { PolicyDeps, PolicyFactory } from '../types.ts'

export const schema = z.strictObject({
  /** How long an answer is served from the cache. */
  ttl: duration.refine((ms) => ms > 0, 'ttl must be positive'),
  /**
   * CEL expressions whose values partition the cache. The model and the whole normalized request are always
   * part of the key; the default adds the consumer's product so tenants never share answers unless configured.
   */
  varyBy: z.array(celExpression).default(['consumer.product']),
  /** Most entries kept by the memory store (least recently used evicted first). */
  maxEntries: z.number().int().positive().default(10_000),
  /** Most bytes kept by the memory store. */
  maxBytes: z.number().int().positive().default(64 * 1024 * 1024),
  store: z.enum(['memory', 'redis']).default('memory'),
  /** Cache answers that call tools (off: a tool call is an action to run, not an answer to reuse). */
  cacheToolCalls: z.boolean().default(false),
  /** Whether token limits count a hit's (cached) usage; see src/cache/hit.ts. */
  countHits: z.boolean().default(true),
})
export type ExactCacheConfig = z.infer<typeof schema>

/** The slot this policy keeps per request on a miss, to store the answer once complete. */
const SLOT = Symbol('sluice.cache.exact')
interface Pending { readonly key: string; readonly capture: AnswerCapture }

/** Requests this policy may answer: one-choice chat completions. Others pass through untouched. */
export function cacheable(ctx: RequestContext): boolean {
  if (ctx.operation !== 'chat.completions') return false
  const n = ctx.body.n
  return n === undefined || n === null || n === 1
}

function openStore(cfg: ExactCacheConfig, deps: PolicyDeps): CacheStore {
  const scope = deps.scope.kind === 'global' ? 'global' : `product:${deps.scope.productId}`
  if (cfg.store === 'redis') {
    const redis = deps.stores.redis
    if (!redis) throw new Error('the cache policy has store: redis but the gateway store is not Redis (set store: { type: redis, url: ... })')
    const keyPrefix = deps.stores.keyPrefix ?? 'sluice:'
    return sharedStore(deps.stores, 'cache:redis', () =>
      lazyCacheStore(async () => new (await import('../../stores/redis/cache-store.ts')).RedisCacheStore(redis, { keyPrefix })))
  }
  return sharedStore(deps.stores, `cache:memory:${scope}:${canonicalJson(cfg)}`, () => new MemoryCacheStore({ maxEntries: cfg.maxEntries, maxBytes: cfg.maxBytes }))
}

export function createExactCache(cfg: ExactCacheConfig, deps: PolicyDeps): Policy {
  const name = 'cache'
  const store = openStore(cfg, deps)
  const vary = cfg.varyBy.map(compileExpr)
  const rules = { cacheToolCalls: cfg.cacheToolCalls }
  return {
    name,
    async inbound(ctx): Promise<UpstreamResult | void> {
      if (!cacheable(ctx)) {
        if (ctx.operation === 'chat.completions') deps.metrics.cacheLookup(name, 'bypass')
        return
      }
      const e = exprContext(ctx)
      const key = exactKey(JSON.stringify(vary.map((x) => exprString(x, e))), ctx.model, ctx.operation, ctx.body)
      const now = deps.clock.now()
      let text: string | null
      try {
        text = await store.get(key, now)
      } catch (err) {
        // The cache being away must never fail a request: serve it from the backend.
        deps.logger.warn({ err, reqId: ctx.id }, 'cache lookup failed; bypassing the cache')
        deps.metrics.cacheLookup(name, 'bypass')
        return
      }
      const answer = text === null ? null : parseAnswer(text)
      if (answer) {
        deps.metrics.cacheLookup(name, 'hit')
        ctx.responseHeaders['x-sluice-cache'] = 'hit'
        const hit: CacheHit = { policy: name, kind: 'exact', countHits: cfg.countHits, usage: answer.usage, distance: null }
        ctx.slots.set(CACHE_HIT, hit)
        const headers = { 'x-sluice-served-by': SERVED_BY_EXACT }
        return ctx.stream ? answerAsStream(answer, now, headers) : answerAsJson(answer, now, headers)
      }
      deps.metrics.cacheLookup(name, 'miss')
      ctx.responseHeaders['x-sluice-cache'] = 'miss'
      ctx.slots.set(SLOT, { key, capture: new AnswerCapture() } satisfies Pending)
    },
    ...captureOnMiss<Pending>(SLOT, rules, () => deps.clock.now(), storable, async (p, answer, now, ctx) => {
      try {
        await store.set(p.key, JSON.stringify(answer), cfg.ttl, now)
      } catch (err) {
        deps.logger.warn({ err, reqId: ctx.id }, 'cache store failed; the answer was not cached')
      }
    }),
  }
}

/** Only complete, successful backend answers are stored: never errors, aborted streams or another cache's hit. */
export function storable(outcome: Outcome): boolean {
  return outcome.status === 200 && outcome.error === null && !outcome.aborted && outcome.servedBy === null
}

export const exactCachePolicy: PolicyFactory<ExactCacheConfig> = {
  name: 'cache',
  schema,
  create: createExactCache,
}
