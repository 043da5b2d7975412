import type { Dispatcher } from 'undici'
import type { FailureSignal } from '../core/pipeline.ts'

/** What a backend answered before its body: the status and its headers (names lower-cased). */
export interface ExchangeHead {
  readonly status: number
  readonly headers: Record<string, string>
}

/** Turns the bytes of a streamed body into events (the SSE parser, or a provider's own framing). */
export interface EventSplitter<T> {
  push(chunk: Uint8Array): readonly T[]
  end(): readonly T[]
}

/** Events a stream may hold unread before the socket is paused (a client slower than its backend). */
const QUEUE_HIGH = 256

/**
 * One request to a backend, driven through undici's dispatch handler interface directly: no Readable
 * stream for the body, no AbortController, no async generator per answer. A JSON body is collected as the
 * chunks arrive; a streamed one is split into events as it arrives and handed to one reader, pausing the
 * socket when the reader falls behind. Per request this saves undici's `request()` wrapper, its body
 * stream and the stream machinery under it (the data plane's largest cost after the sockets themselves).
 */
export class UpstreamExchange<T> implements Dispatcher.DispatchHandler {
  /** Settles with the head, or fails (network error, abort before the head). */
  readonly head: Promise<ExchangeHead>
  private settleHead!: { resolve(h: ExchangeHead): void; reject(e: Error): void } | null
  private abortUndici: ((err: Error) => void) | null = null
  /** Why the exchange was stopped before undici handed over its abort function. */
  private stopped: Error | null = null
  private done = false
  // Collected (JSON) body.
  private chunks: Buffer[] | null = null
  private bodyWaiter: { resolve(b: Buffer): void; reject(e: Error): void } | null = null
  private bodyResult: Buffer | null = null
  // Streamed body.
  private splitter: EventSplitter<T> | null = null
  private readonly queue: T[] = []
  private queueHead = 0
  private failure: Error | null = null
  private reader: { resolve(r: IteratorResult<T>): void; reject(e: Error): void } | null = null
  private resume: (() => void) | null = null
  private paused = false
  /** Told of the failure of a streamed body the moment it fails (see FailureSignal). */
  private failureListener: ((err: Error) => void) | null = null

  /**
   * `streamed(head)` says, once the head is in, whether the body is split into events (else collected);
   * `mapError` turns undici's own errors into what the caller reports (errors given to `abort` are final).
   */
  constructor(private readonly streamed: (head: ExchangeHead) => EventSplitter<T> | null, private readonly mapError: (err: Error) => Error) {
    this.head = new Promise<ExchangeHead>((resolve, reject) => { this.settleHead = { resolve, reject } })
  }

  /** Whether the body is split into events (decided by `streamed` once the head is in). */
  get streaming(): boolean {
    return this.splitter !== null
  }

  /** Whether the exchange is over (answered whole, failed or stopped): stopping it then is a no-op. */
  get finished(): boolean {
    return this.done
  }

  /** Stops the exchange (timeout, the caller gone, the reader done); a queued request is dropped once it would start. */
  abort(reason: Error): void {
    if (this.done) return
    // Failed first: undici reports the abort back through onError, which must not replace the reason.
    this.fail(reason)
    if (this.abortUndici !== null) this.abortUndici(reason)
    else this.stopped ??= reason
  }

  /** The whole collected body (JSON answers). */
  body(): Promise<Buffer> {
    if (this.bodyResult !== null) return Promise.resolve(this.bodyResult)
    if (this.failure !== null) return Promise.reject(this.failure)
    return new Promise((resolve, reject) => { this.bodyWaiter = { resolve, reject } })
  }

  /** The events of a streamed body, for one reader. */
  events(): AsyncIterableIterator<T> {
    const next = (): Promise<IteratorResult<T>> => {
      if (this.queueHead < this.queue.length) {
        const value = this.queue[this.queueHead++]!
        if (this.queueHead === this.queue.length) { this.queue.length = 0; this.queueHead = 0 }
        if (this.paused && this.queue.length - this.queueHead < QUEUE_HIGH / 2) { this.paused = false; this.resume?.() }
        return Promise.resolve({ value, done: false })
      }
      if (this.failure !== null) return Promise.reject(this.failure)
      if (this.done) return Promise.resolve({ value: undefined, done: true })
      if (this.paused) { this.paused = false; this.resume?.() }
      return new Promise((resolve, reject) => { this.reader = { resolve, reject } })
    }
    const it: AsyncIterableIterator<T> & FailureSignal = {
      next,
      return: (): Promise<IteratorResult<T>> => {
        if (!this.done) this.abort(new Error('the reader stopped'))
        return Promise.resolve({ value: undefined, done: true })
      },
      onFailure: (listener) => {
        if (this.failure !== null) listener(this.failure)
        else this.failureListener = listener
      },
      [Symbol.asyncIterator]: () => it,
    }
    return it
  }

  // undici's handler interface (the one its HTTP/1 client calls without a wrapper).

  onConnect(abort: (err?: Error) => void): void {
    if (this.stopped !== null) abort(this.stopped)
    else this.abortUndici = abort
  }

  onHeaders(status: number, raw: Buffer[] | string[] | null, resume: () => void): boolean {
    if (status < 200) return true // 1xx: informational, the answer follows
    const headers: Record<string, string> = {}
    if (raw !== null) {
      for (let i = 0; i + 1 < raw.length; i += 2) {
        const name = raw[i]!.toString().toLowerCase()
        const value = raw[i + 1]!.toString()
        headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`
      }
    }
    const head = { status, headers }
    this.resume = resume
    this.splitter = this.streamed(head)
    if (this.splitter === null) this.chunks = []
    const settle = this.settleHead
    this.settleHead = null
    settle?.resolve(head)
    return true
  }

  onData(chunk: Buffer): boolean {
    if (this.chunks !== null) {
      this.chunks.push(chunk)
      return true
    }
    if (this.splitter === null) return true
    let events: readonly T[]
    try {
      events = this.splitter.push(chunk)
    } catch (err) {
      this.abort(this.mapError(err as Error))
      return false
    }
    this.deliver(events)
    if (this.queue.length - this.queueHead >= QUEUE_HIGH) this.paused = true
    return !this.paused
  }

  onComplete(): void {
    if (this.done) return
    if (this.chunks !== null) {
      this.bodyResult = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks)
      this.chunks = null
      this.done = true
      const w = this.bodyWaiter
      this.bodyWaiter = null
      w?.resolve(this.bodyResult)
      return
    }
    if (this.splitter !== null) {
      try {
        this.deliver(this.splitter.end())
      } catch (err) {
        this.fail(this.mapError(err as Error))
        return
      }
    }
    this.done = true
    if (this.reader !== null && this.queueHead === this.queue.length) {
      const r = this.reader
      this.reader = null
      r.resolve({ value: undefined, done: true })
    }
  }

  onError(err: Error): void {
    if (this.failure === null) this.fail(this.mapError(err))
  }

  private deliver(events: readonly T[]): void {
    let i = 0
    if (this.reader !== null && events.length !== 0) {
      const r = this.reader
      this.reader = null
      r.resolve({ value: events[0]!, done: false })
      i = 1
    }
    for (; i < events.length; i++) this.queue.push(events[i]!)
  }

  private fail(err: Error): void {
    if (this.failure !== null || (this.done && this.bodyResult !== null)) return
    if (this.done && this.splitter !== null) return // the stream ended whole; a late error changes nothing
    this.failure = err
    this.done = true
    const head = this.settleHead
    this.settleHead = null
    head?.reject(err)
    const w = this.bodyWaiter
    this.bodyWaiter = null
    w?.reject(err)
    const r = this.reader
    this.reader = null
    r?.reject(err)
    const listener = this.failureListener
    this.failureListener = null
    listener?.(err)
  }
}
