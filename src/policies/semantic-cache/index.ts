import { z } from 'zod'
import { AnswerCapture, answerAsJson, answerAsStream, captureOnMiss, parseAnswer } from '../../cache/answer.ts'
import { BackendEmbedder } from '../../cache/backend-embeddings.ts'
import { guardCheck, promptFacts } from '../../cache/guard.ts'
import { CACHE_HIT, SERVED_BY_SEMANTIC, type CacheHit } from '../../cache/hit.ts'
import { acquireLocalEmbedder } from '../../cache/local-embedder.ts'
import { answerFields, canonicalJson, contentText } from '../../cache/request-key.ts'
import { sha256Hex } from '../../core/sha256.ts'
import { sharedStore } from '../../cache/store-registry.ts'
import type { Embedder, VectorStore } from '../../cache/types.ts'
import { duration } from '../../config/schema.ts'
import type { RequestContext } from '../../core/context.ts'
import type { Outcome, Policy, UpstreamResult } from '../../core/pipeline.ts'
import { MemoryVectorStore } from '../../stores/memory/vector.ts'
import { lazyVectorStore } from '../../cache/lazy-stores.ts'
import { cacheable, storable } from '../cache/index.ts'
import { celExpression, compileExpr, exprContext, exprString } from '../expr.ts'
import type { PolicyDeps, PolicyFactory } from '../types.ts'

/**
 * Default score threshold (cosine distance): measured on test/fixtures/semantic-pairs*.json, see BENCHMARKS.md.
 * 0.25, not 0.2: short support phrasings ("Password reset help" after "How do I reset my password?") sit at
 * 0.20–0.21 with USE-Lite; the guard, not the distance, is what keeps one-fact changes out.
 */
export const DEFAULT_SCORE_THRESHOLD = 0.25

const embeddings = z.union([
  z.strictObject({
    /** A backend or pool id; called at `/v1/embeddings` through the gateway's routing (pools, breakers). */
    backend: z.string().min(1),
    model: z.string().min(1),
    timeout: duration.default(5_000),
  }),
  z.strictObject({
    /** Universal Sentence Encoder Lite in a worker thread, offline. */
    local: z.literal('use-lite'),
    timeout: duration.default(5_000),
  }),
])

export const schema = z.strictObject({
  embeddings,
  /** Cosine distance (0..2; Azure's range is 0..1): a stored prompt is a candidate only at or below it. Lower = stricter. */
  scoreThreshold: z.number().min(0).max(2).default(DEFAULT_SCORE_THRESHOLD),
  ttl: duration.refine((ms) => ms > 0, 'ttl must be positive'),
  /** CEL partitions; the model and the request's other parameters (tools, temperature, …) always partition too. */
  varyBy: z.array(celExpression).default(['consumer.product']),
  /** Leave system/developer messages out of the embedding (they still must match exactly: they partition). */
  ignoreSystemMessages: z.boolean().default(true),
  /** Conversations with more messages (after ignoring system ones) skip the cache. */
  maxMessageCount: z.number().int().positive().optional(),
  store: z.enum(['memory', 'redis', 'postgres']).default('memory'),
  /** Where `store: postgres` keeps vectors (pgvector). */
  postgres: z.strictObject({ url: z.string().min(1), table: z.string().optional(), schema: z.string().optional() }).optional(),
  /** Memory store bounds. */
  maxEntriesPerPartition: z.number().int().positive().default(10_000),
  maxEntries: z.number().int().positive().default(100_000),
  /** Check numbers, quoted strings, names, negations… agree before serving a hit (src/cache/guard.ts). */
  guard: z.boolean().default(true),
  /** Nearest stored prompts examined per lookup (the closest one passing the guard wins). */
  candidates: z.number().int().min(1).max(32).default(4),
  /** Longest prompt text embedded, in characters; longer prompts skip the cache rather than being truncated. */
  maxPromptChars: z.number().int().positive().default(16_384),
  cacheToolCalls: z.boolean().default(false),
  /** Whether token limits count a hit's (cached) usage; see src/cache/hit.ts. */
  countHits: z.boolean().default(true),
}).superRefine((o, ctx) => {
  if (o.store === 'redis') ctx.addIssue({ code: 'custom', path: ['store'], message: 'semantic-cache store: redis needs Redis vector search, which this build does not support; use memory or postgres' })
  if (o.store === 'postgres' && !o.postgres) ctx.addIssue({ code: 'custom', path: ['postgres'], message: 'semantic-cache store: postgres needs postgres: { url: postgres://... }' })
})
export type SemanticCacheConfig = z.infer<typeof schema>

const SLOT = Symbol('sluice.cache.semantic')
interface Pending { readonly partition: string; readonly vector: Float32Array; readonly prompt: string; readonly capture: AnswerCapture }

/** What a request contributes to the lookup: the text to embed and the partition it may match in. */
export interface SemanticPrompt { readonly text: string; readonly partition: string }

const SYSTEM_ROLES = new Set(['system', 'developer'])

/**
 * The prompt text and partition of a chat request, or null when it must skip the cache (non-text content,
 * too many messages, too long). System messages left out of the text are hashed into the partition instead,
 * so a different system prompt never shares answers.
 */
export function semanticPrompt(ctx: RequestContext, cfg: Pick<SemanticCacheConfig, 'ignoreSystemMessages' | 'maxMessageCount' | 'maxPromptChars'>, varyValues: readonly string[]): SemanticPrompt | null {
  const messages = ctx.body.messages
  if (!Array.isArray(messages) || messages.length === 0) return null
  const kept: Array<{ role: string; text: string }> = []
  const system: unknown[] = []
  for (const m of messages) {
    if (!m || typeof m !== 'object') return null
    const msg = m as Record<string, unknown>
    const role = typeof msg.role === 'string' ? msg.role : ''
    if (cfg.ignoreSystemMessages && SYSTEM_ROLES.has(role)) { system.push(msg); continue }
    // Tool results and assistant tool calls are structured: compare them exactly via the partition.
    if (msg.tool_calls !== undefined || msg.tool_call_id !== undefined || role === 'tool' || role === 'function') return null
    const text = contentText(msg.content)
    if (text === null) return null
    kept.push({ role, text })
  }
  if (kept.length === 0) return null
  if (cfg.maxMessageCount !== undefined && kept.length > cfg.maxMessageCount) return null
  const text = kept.length === 1 ? kept[0]!.text : kept.map((k) => `${k.role}: ${k.text}`).join('\n')
  if (text.length > cfg.maxPromptChars || text.trim() === '') return null
  const partition = sha256Hex(canonicalJson({ v: varyValues, m: ctx.model, o: ctx.operation, r: kept.map((k) => k.role), s: system, p: answerFields(ctx.body, ['messages', 'model']) }))
  return { text, partition }
}

function openStore(cfg: SemanticCacheConfig, deps: PolicyDeps): VectorStore {
  if (cfg.store === 'postgres') {
    const pgc = cfg.postgres!
    // connect() gives the pool a query timeout and an idle-error listener: a dropped connection is a miss, not a crash.
    return sharedStore(deps.stores, `semantic:pg:${canonicalJson(pgc)}`, () =>
      lazyVectorStore(async () => (await import('../../stores/postgres/vector-store.ts')).PostgresVectorStore.connect(pgc.url, { table: pgc.table, schema: pgc.schema })))
  }
  const scope = deps.scope.kind === 'global' ? 'global' : `product:${deps.scope.productId}`
  return sharedStore(deps.stores, `semantic:memory:${scope}:${canonicalJson(cfg)}`, () =>
    new MemoryVectorStore({ maxEntriesPerPartition: cfg.maxEntriesPerPartition, maxEntries: cfg.maxEntries }))
}

function openEmbedder(cfg: SemanticCacheConfig, deps: PolicyDeps): Embedder {
  const e = cfg.embeddings
  if ('local' in e) return sharedStore(deps.stores, 'semantic:embedder:local', () => acquireLocalEmbedder({ timeoutMs: e.timeout }))
  const embed = deps.embed
  if (!embed) throw new Error('semantic-cache: this gateway gives policies no embeddings route')
  return new BackendEmbedder(embed, e.backend, e.model, e.timeout)
}

export function createSemanticCache(cfg: SemanticCacheConfig, deps: PolicyDeps): Policy {
  const name = 'semantic-cache'
  const store = openStore(cfg, deps)
  const embedder = openEmbedder(cfg, deps)
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
      const prompt = semanticPrompt(ctx, cfg, vary.map((x) => exprString(x, e)))
      if (!prompt) {
        deps.metrics.cacheLookup(name, 'bypass')
        return
      }
      let vector: Float32Array
      let matches
      const now = deps.clock.now()
      try {
        vector = (await embedder.embed([prompt.text], ctx.signal))[0]!
        matches = await store.nearest(prompt.partition, vector, cfg.candidates, now)
      } catch (err) {
        if (ctx.signal.aborted) throw err
        // No embeddings or no vector store: answer from the backend, uncached.
        deps.logger.warn({ err: { name: (err as Error).name, message: (err as Error).message }, reqId: ctx.id }, 'semantic cache unavailable; bypassing it')
        deps.metrics.cacheLookup(name, 'bypass')
        return
      }
      const facts = cfg.guard ? promptFacts(prompt.text) : null
      for (const m of matches) {
        if (m.distance > cfg.scoreThreshold) break
        if (facts && !guardCheck(facts, promptFacts(m.entry.prompt)).ok) continue
        const answer = parseAnswer(m.entry.payload)
        if (!answer) continue
        deps.metrics.cacheLookup(name, 'hit')
        ctx.responseHeaders['x-sluice-cache'] = 'hit'
        ctx.responseHeaders['x-sluice-cache-score'] = m.distance.toFixed(4)
        const hit: CacheHit = { policy: name, kind: 'semantic', countHits: cfg.countHits, usage: answer.usage, distance: m.distance }
        ctx.slots.set(CACHE_HIT, hit)
        const headers = { 'x-sluice-served-by': SERVED_BY_SEMANTIC }
        return ctx.stream ? answerAsStream(answer, now, headers) : answerAsJson(answer, now, headers)
      }
      deps.metrics.cacheLookup(name, 'miss')
      ctx.responseHeaders['x-sluice-cache'] = 'miss'
      ctx.slots.set(SLOT, { partition: prompt.partition, vector, prompt: prompt.text, capture: new AnswerCapture() } satisfies Pending)
    },
    ...captureOnMiss<Pending>(SLOT, rules, () => deps.clock.now(), storable, async (p, answer, now, ctx) => {
      try {
        await store.upsert({ id: sha256Hex(p.partition + '\u0000' + p.prompt).slice(0, 32), partition: p.partition, vector: p.vector, prompt: p.prompt, payload: JSON.stringify(answer), expiresAt: now + cfg.ttl })
      } catch (err) {
        deps.logger.warn({ err, reqId: ctx.id }, 'semantic cache store failed; the answer was not cached')
      }
    }),
  }
}

export const semanticCachePolicy: PolicyFactory<SemanticCacheConfig> = {
  name: 'semantic-cache',
  schema,
  create: createSemanticCache,
}
