import type { ModelConfig } from '../config/schema.ts'
import type { Snapshot } from '../config/snapshot.ts'
import { createRequestContext } from '../core/context.ts'
import type { Dispatch } from '../core/pipeline.ts'
import type { Embedder } from './types.ts'

/** Embeds texts with `model` at a configured backend (or pool), through the gateway's own routing. */
export type EmbedFn = (backendId: string, model: string, texts: readonly string[], signal?: AbortSignal) => Promise<Float32Array[]>

export class EmbeddingsUnavailable extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'EmbeddingsUnavailable'
  }
}

/**
 * Builds the `embed` function policies get. Each (backend, model) pair gets a router over a snapshot whose
 * only model is `model` targeting that backend or pool: the call takes the same path as client traffic
 * (pool balancing, circuit breakers in the shared breaker store, failover, upstream clients, provider
 * shapes) without `model` having to be a public model name.
 */
export function routerEmbeddings(snapshot: Snapshot, makeRouter: (s: Snapshot) => { dispatch: Dispatch }): EmbedFn {
  const routers = new Map<string, Dispatch>()
  const dispatchFor = (backendId: string, model: string): Dispatch => {
    const key = `${backendId}\u0000${model}`
    let d = routers.get(key)
    if (!d) {
      if (!snapshot.backends.has(backendId) && !snapshot.pools.has(backendId)) throw new EmbeddingsUnavailable(`no backend or pool "${backendId}"`)
      const m = { name: model, target: backendId, fallbacks: [], maxAttempts: 2 } as unknown as ModelConfig
      d = makeRouter({ ...snapshot, models: new Map([[model, m]]) }).dispatch
      routers.set(key, d)
    }
    return d
  }
  return async (backendId, model, texts, signal) => {
    const dispatch = dispatchFor(backendId, model)
    const ctx = createRequestContext({
      id: 'embed-' + Math.random().toString(36).slice(2),
      startedAt: Date.now(),
      operation: 'embeddings',
      info: { method: 'POST', path: '/v1/embeddings', ip: '127.0.0.1', headers: {} },
      signal: signal ?? new AbortController().signal,
      model,
      body: { model, input: [...texts], encoding_format: 'float' },
      stream: false,
      clientWantsStreamUsage: false,
    })
    const res = await dispatch(ctx)
    if (res.kind !== 'json') {
      res.abort()
      throw new EmbeddingsUnavailable('the embeddings backend answered with a stream')
    }
    return parseEmbeddings(res.body, texts.length)
  }
}

/** Reads an OpenAI embeddings response (float arrays or base64 little-endian float32). */
export function parseEmbeddings(body: Record<string, unknown>, expected: number): Float32Array[] {
  const data = body.data
  if (!Array.isArray(data) || data.length !== expected) throw new EmbeddingsUnavailable('the embeddings response has no usable data')
  const out: Float32Array[] = new Array(expected)
  for (const [pos, item] of (data as Array<{ index?: unknown; embedding?: unknown }>).entries()) {
    const i = typeof item.index === 'number' ? item.index : pos
    const e = item.embedding
    let v: Float32Array
    if (Array.isArray(e) && e.length > 0 && e.every((x) => typeof x === 'number' && Number.isFinite(x))) v = Float32Array.from(e as number[])
    else if (typeof e === 'string' && e.length > 0) {
      const buf = Buffer.from(e, 'base64')
      v = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength - (buf.byteLength % 4)))
    } else throw new EmbeddingsUnavailable('the embeddings response has an invalid vector')
    if (i < 0 || i >= expected) throw new EmbeddingsUnavailable('the embeddings response has an invalid index')
    out[i] = v
  }
  for (let i = 0; i < expected; i++) if (!out[i]) throw new EmbeddingsUnavailable('the embeddings response misses a vector')
  return out
}

/** An Embedder over a backend's `/v1/embeddings`; its dimension is learnt from the first answer. */
export class BackendEmbedder implements Embedder {
  readonly id: string
  private learnt: number | null = null

  constructor(private readonly embedFn: EmbedFn, private readonly backendId: string, private readonly model: string, private readonly timeoutMs: number) {
    this.id = `backend:${backendId}/${model}`
  }

  get dims(): number | null { return this.learnt }

  async embed(texts: readonly string[], signal?: AbortSignal): Promise<Float32Array[]> {
    const timeout = AbortSignal.timeout(this.timeoutMs)
    const vs = await this.embedFn(this.backendId, this.model, texts, signal ? AbortSignal.any([signal, timeout]) : timeout)
    this.learnt = vs[0]?.length ?? this.learnt
    return vs
  }

  async close(): Promise<void> {}
}
