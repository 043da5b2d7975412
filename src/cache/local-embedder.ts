/**
 * Offline embeddings with Universal Sentence Encoder Lite, run in one worker thread per process (see
 * embed-worker.ts). The model costs ~210 MB and ~0.5 s to load, so it is loaded lazily on the first call and
 * shared by every policy that asks for it: `acquireLocalEmbedder()` hands out reference-counted handles and
 * the worker ends when the last handle is closed.
 *
 * Calls are queued on the main thread and sent to the worker in batches (one model run for everything that
 * arrived while the previous batch was computing), which is what keeps p99 flat under concurrency. Each call
 * has its own timeout and may pass an AbortSignal; either rejects that call only.
 */
import { Worker } from 'node:worker_threads'
import type { Embedder } from './types.ts'
import type { WorkerReply, WorkerRequest } from './embed-worker.ts'

export const LOCAL_EMBEDDER_ID = 'local:use-lite'
export const LOCAL_EMBEDDER_DIMS = 512

export interface LocalEmbedderOptions {
  /** Per-call limit, queueing included (default 5 s; the first call also waits for the model to load). */
  readonly timeoutMs?: number
  /** Most texts sent to the worker in one model run (default 32). */
  readonly maxBatch?: number
  /** Longest text accepted, in characters (default 32 768); longer texts are refused, never truncated, so
   * two long prompts that differ only past the cut can never look identical. */
  readonly maxChars?: number
  /** Most texts waiting (default 1024): beyond it calls fail fast instead of growing latency without bound. */
  readonly maxQueue?: number
}

/** Why an embedding was not produced; callers treat any of these as "bypass the cache". */
export class EmbedError extends Error {
  constructor(message: string, readonly code: 'timeout' | 'aborted' | 'overloaded' | 'too_long' | 'closed' | 'model') {
    super(message)
    this.name = 'EmbedError'
  }
}

interface Pending {
  readonly texts: readonly string[]
  readonly resolve: (v: Float32Array[]) => void
  readonly reject: (e: Error) => void
  settled: boolean
  cleanup(): void
}

interface Batch { readonly id: number; readonly calls: Pending[]; readonly watchdog: NodeJS.Timeout }

/** A batch still running after this long means a wedged worker: it is replaced. */
const HANG_MS = 60_000

/** Where the worker entry is: the tsx bootstrap when running from sources, the compiled file from dist/. */
function workerUrl(): URL {
  return import.meta.url.endsWith('.ts') ? new URL('./embed-worker-boot.mjs', import.meta.url) : new URL('./embed-worker.js', import.meta.url)
}

/** The process-wide engine behind every handle: one worker, one queue. */
export class LocalEmbeddingEngine {
  private worker: Worker | null = null
  private ready: Promise<void> | null = null
  private readonly queue: Pending[] = []
  private queuedTexts = 0
  private inFlight: Batch | null = null
  private nextId = 1
  private closed = false
  readonly timeoutMs: number
  private readonly maxBatch: number
  private readonly maxChars: number
  private readonly maxQueue: number

  constructor(opts: LocalEmbedderOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 5000
    this.maxBatch = Math.max(1, opts.maxBatch ?? 32)
    this.maxChars = opts.maxChars ?? 32_768
    this.maxQueue = opts.maxQueue ?? 1024
  }

  embed(texts: readonly string[], signal?: AbortSignal, timeoutMs = this.timeoutMs): Promise<Float32Array[]> {
    if (this.closed) return Promise.reject(new EmbedError('local embedder is closed', 'closed'))
    if (texts.length === 0) return Promise.resolve([])
    if (signal?.aborted) return Promise.reject(new EmbedError('embedding aborted', 'aborted'))
    for (const t of texts) {
      if (typeof t !== 'string') return Promise.reject(new EmbedError('embedding input must be text', 'model'))
      if (t.length > this.maxChars) return Promise.reject(new EmbedError(`text longer than ${this.maxChars} characters is not embedded`, 'too_long'))
    }
    if (this.queuedTexts + texts.length > this.maxQueue) return Promise.reject(new EmbedError('local embedder queue is full', 'overloaded'))
    return new Promise<Float32Array[]>((resolve, reject) => {
      const fail = (err: EmbedError) => { if (!call.settled) { call.settled = true; this.unqueue(call); call.cleanup(); reject(err) } }
      const onAbort = () => fail(new EmbedError('embedding aborted', 'aborted'))
      const timer = setTimeout(() => fail(new EmbedError(`local embedding took longer than ${timeoutMs} ms`, 'timeout')), timeoutMs)
      const call: Pending = {
        texts,
        settled: false,
        resolve: (v) => { if (!call.settled) { call.settled = true; call.cleanup(); resolve(v) } },
        reject: (e) => { if (!call.settled) { call.settled = true; call.cleanup(); reject(e) } },
        cleanup: () => { clearTimeout(timer); signal?.removeEventListener('abort', onAbort) },
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.queue.push(call)
      this.queuedTexts += texts.length
      this.pump()
    })
  }

  /** Ends the worker; pending calls fail with `closed`. */
  async close(): Promise<void> {
    this.closed = true
    const err = new EmbedError('local embedder is closed', 'closed')
    for (const call of this.queue.splice(0)) call.reject(err)
    this.queuedTexts = 0
    if (this.inFlight) { clearTimeout(this.inFlight.watchdog); this.inFlight.calls.forEach((c) => c.reject(err)) }
    this.inFlight = null
    const w = this.worker
    this.worker = null
    this.ready = null
    if (w) await w.terminate()
  }

  private unqueue(call: Pending): void {
    const i = this.queue.indexOf(call)
    if (i >= 0) { this.queue.splice(i, 1); this.queuedTexts -= call.texts.length }
  }

  /** Starts the worker once and resolves when its model is loaded; a failed start is retried on the next call. */
  private start(): Promise<void> {
    if (this.ready) return this.ready
    // No inherited execArgv: the host's flags (--input-type, --test, …) can be invalid in a worker, and the
    // bootstrap registers tsx itself.
    const worker = new Worker(workerUrl(), { execArgv: [] })
    this.worker = worker
    this.ready = new Promise<void>((resolve, reject) => {
      worker.on('message', (msg: WorkerReply) => {
        if (msg.type === 'ready') resolve()
        else if (msg.type === 'failed') reject(new EmbedError(msg.message, 'model'))
        else this.onReply(msg)
      })
      const crash = (why: string) => {
        if (this.worker !== worker) return
        const err = new EmbedError(`local embedding worker stopped: ${why}`, 'model')
        reject(err)
        this.worker = null
        this.ready = null
        if (this.inFlight) { clearTimeout(this.inFlight.watchdog); this.inFlight.calls.forEach((c) => c.reject(err)) }
        this.inFlight = null
        this.pump()
      }
      worker.on('error', (e) => crash(e.message))
      worker.on('exit', (code) => crash(`exit code ${code}`))
    })
    // A load failure is reported to the waiting calls by pump(); this only keeps it from being unhandled.
    this.ready.catch(() => {})
    this.idle()
    return this.ready
  }

  /** Sends the next batch when the worker is free. */
  private pump(): void {
    if (this.closed || this.inFlight || this.queue.length === 0) return
    const ready = this.start()
    const worker = this.worker!
    worker.ref()
    ready.then(() => {
      if (this.closed || this.inFlight || this.worker !== worker || this.queue.length === 0) { this.idle(); return }
      const calls: Pending[] = []
      const texts: string[] = []
      while (this.queue.length && (calls.length === 0 || texts.length + this.queue[0]!.texts.length <= this.maxBatch)) {
        const call = this.queue.shift()!
        this.queuedTexts -= call.texts.length
        calls.push(call)
        texts.push(...call.texts)
      }
      const watchdog = setTimeout(() => { if (this.worker === worker) void worker.terminate() }, HANG_MS)
      watchdog.unref()
      const batch: Batch = { id: this.nextId++, calls, watchdog }
      this.inFlight = batch
      worker.postMessage({ type: 'embed', id: batch.id, texts } satisfies WorkerRequest)
    }, (err: Error) => {
      // The model could not load: every waiting call fails now; the next call tries a fresh worker.
      if (this.worker === worker) { this.worker = null; this.ready = null; void worker.terminate() }
      const error = err instanceof EmbedError ? err : new EmbedError(err.message, 'model')
      for (const call of this.queue.splice(0)) call.reject(error)
      this.queuedTexts = 0
    })
  }

  private onReply(msg: Extract<WorkerReply, { type: 'result' | 'error' }>): void {
    const batch = this.inFlight
    if (!batch || batch.id !== msg.id) return
    clearTimeout(batch.watchdog)
    this.inFlight = null
    if (msg.type === 'error') {
      const err = new EmbedError(`local embedding failed: ${msg.message}`, 'model')
      batch.calls.forEach((c) => c.reject(err))
    } else {
      let offset = 0
      for (const call of batch.calls) {
        call.resolve(msg.vectors.slice(offset, offset + call.texts.length))
        offset += call.texts.length
      }
    }
    this.pump()
    this.idle()
  }

  /** An idle worker must not keep the process alive; a busy one must. */
  private idle(): void {
    if (this.worker && !this.inFlight && this.queue.length === 0) this.worker.unref()
  }
}

let shared: { engine: LocalEmbeddingEngine; handles: number } | null = null

/**
 * A handle on the process-wide local embedder. The model loads on the first `embed()`, not here, so a config
 * that names `local` costs nothing until a request needs it. Options apply when the engine is created (the
 * first handle); `timeoutMs` applies per handle.
 */
export function acquireLocalEmbedder(opts: LocalEmbedderOptions = {}): Embedder {
  if (!shared) shared = { engine: new LocalEmbeddingEngine(opts), handles: 0 }
  const slot = shared
  slot.handles++
  const timeoutMs = opts.timeoutMs ?? slot.engine.timeoutMs
  let open = true
  return {
    id: LOCAL_EMBEDDER_ID,
    dims: LOCAL_EMBEDDER_DIMS,
    embed: (texts, signal) => (open ? slot.engine.embed(texts, signal, timeoutMs) : Promise.reject(new EmbedError('local embedder is closed', 'closed'))),
    async close() {
      if (!open) return
      open = false
      if (--slot.handles === 0) {
        if (shared === slot) shared = null
        await slot.engine.close()
      }
    },
  }
}
