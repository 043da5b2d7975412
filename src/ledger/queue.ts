/**
 * A bounded, batching write-behind queue. `append` is synchronous and O(1): the request path hands over a
 * record and moves on. A single writer drains the queue in batches bounded by count and bytes, triggered
 * when a batch is full or when the oldest record has waited `flushInterval`. A failed batch is retried
 * with exponential backoff, never dropped; while the store is down records accumulate up to `maxQueue` /
 * `maxQueueBytes`, past which new records are shed and counted instead of growing memory without bound.
 */

export interface BatchingOptions {
  /** Records per write. */
  readonly batchSize: number
  /** Approximate bytes per write (peers' lesson: one flush of 1,000 prompts made tens-of-MB statements). */
  readonly batchBytes: number
  /** Longest wait of a record before it is written, ms. */
  readonly flushInterval: number
  readonly maxQueue: number
  readonly maxQueueBytes: number
  /** First retry delay after a failed write, ms; doubles up to `retryMax`. */
  readonly retryBase: number
  readonly retryMax: number
}

export const DEFAULT_BATCHING: BatchingOptions = {
  batchSize: 500,
  batchBytes: 1024 * 1024,
  flushInterval: 1000,
  maxQueue: 100_000,
  maxQueueBytes: 64 * 1024 * 1024,
  retryBase: 100,
  retryMax: 10_000,
}

export interface QueueStats {
  /** Records waiting, including a batch being written. */
  readonly queued: number
  readonly queuedBytes: number
  readonly written: number
  readonly dropped: number
  /** Failed write attempts so far. */
  readonly failures: number
  /** True while the last write failed and the writer is backing off. */
  readonly retrying: boolean
}

export interface QueueHooks<T> {
  readonly write: (batch: readonly T[]) => Promise<void>
  /** An estimate of a record's size in the store, bytes. */
  readonly sizeOf: (item: T) => number
  /** Records shed because the queue was full (or closed). */
  readonly onDrop?: (n: number) => void
  /** A write failed (it will be retried), or writes recovered after failures. */
  readonly onWriteError?: (err: unknown, attempt: number) => void
  readonly onRecover?: (failedAttempts: number) => void
}

/** A flush() caller, waiting until every record accepted before its call has landed. */
interface Waiter { resolve: (drained: boolean) => void; timer: NodeJS.Timeout | null; target: number }

export class BatchQueue<T> {
  private buf: T[] = []
  private sizes: number[] = []
  private head = 0
  private bytes = 0
  /** Records in the batch being written; still counted in `bytes` and the bounds until it lands. */
  private inflight = 0
  private writing = false
  private closed = false
  /** Set when close() ran out of time: the writer stops retrying. */
  private abandoned = false
  private timer: NodeJS.Timeout | null = null
  private sleep: { timer: NodeJS.Timeout; wake: () => void } | null = null
  private waiters: Waiter[] = []
  /** Records accepted so far, and records settled (written, or given up on at close) so far: FIFO, so a flush waits for `settled >= accepted at its call`. */
  private accepted = 0
  private settled = 0
  private written = 0
  private dropped = 0
  private failures = 0
  private consecutiveFailures = 0
  private readonly opts: BatchingOptions

  constructor(private readonly hooks: QueueHooks<T>, opts: Partial<BatchingOptions> = {}) {
    this.opts = { ...DEFAULT_BATCHING, ...stripUndefined(opts) }
  }

  /** Hands a record over; returns false when it was shed (queue full or closed). Never throws, never waits. */
  append(item: T): boolean {
    const size = this.hooks.sizeOf(item)
    const count = this.buf.length - this.head + this.inflight
    if (this.closed || count >= this.opts.maxQueue || this.bytes + size > this.opts.maxQueueBytes) {
      this.dropped++
      this.hooks.onDrop?.(1)
      return false
    }
    this.buf.push(item)
    this.sizes.push(size)
    this.accepted++
    this.bytes += size
    if (this.writing) return true
    if (this.buf.length - this.head >= this.opts.batchSize || this.pendingBytes() >= this.opts.batchBytes) {
      this.startWriter()
    } else if (this.timer === null) {
      this.timer = setTimeout(() => { this.timer = null; this.startWriter() }, this.opts.flushInterval)
      this.timer.unref()
    }
    return true
  }

  /** Whether `append` would accept a record of `size` now (so a caller can refuse it before journaling it). */
  hasRoom(size: number): boolean {
    return !this.closed && this.buf.length - this.head + this.inflight < this.opts.maxQueue && this.bytes + size <= this.opts.maxQueueBytes
  }

  /** Counts records shed before they reached the queue (e.g. refused by a full journal). */
  shed(n: number): void {
    this.dropped += n
    this.hooks.onDrop?.(n)
  }

  stats(): QueueStats {
    return {
      queued: this.buf.length - this.head,
      queuedBytes: this.bytes,
      written: this.written,
      dropped: this.dropped,
      failures: this.failures,
      retrying: this.consecutiveFailures > 0,
    }
  }

  /**
   * Writes everything queued now, retrying failures (waking a writer that is backing off). Resolves true once
   * every record accepted before the call has landed (records arriving meanwhile do not hold it up), false if
   * `timeoutMs` passed first (records stay queued and keep being retried).
   */
  flush(timeoutMs = Infinity): Promise<boolean> {
    if (this.isEmpty() || this.settled >= this.accepted) return Promise.resolve(true)
    return new Promise<boolean>((resolve) => {
      const w: Waiter = { resolve, timer: null, target: this.accepted }
      if (Number.isFinite(timeoutMs)) {
        w.timer = setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w)
          resolve(false)
        }, timeoutMs)
      }
      this.waiters.push(w)
      this.sleep?.wake()
      this.startWriter()
    })
  }

  /**
   * Stops accepting, drains within `timeoutMs`, then gives up on what is left (counted as dropped).
   * Returns the number of records lost.
   */
  async close(timeoutMs = 10_000): Promise<number> {
    this.closed = true
    const drained = await this.flush(timeoutMs)
    if (this.timer) { clearTimeout(this.timer); this.timer = null }
    if (drained) return 0
    const lost = this.buf.length - this.head + this.inflight
    this.abandoned = true
    this.dropped += lost
    this.hooks.onDrop?.(lost)
    this.buf = []
    this.sizes = []
    this.head = 0
    this.inflight = 0
    this.bytes = 0
    this.sleep?.wake()
    for (const w of this.waiters) { if (w.timer) clearTimeout(w.timer); w.resolve(false) }
    this.waiters = []
    return lost
  }

  private isEmpty(): boolean {
    return this.buf.length - this.head === 0 && this.inflight === 0
  }

  private pendingBytes(): number {
    // `bytes` also counts the batch in flight; good enough for the trigger, which only runs when idle.
    return this.bytes
  }

  private startWriter(): void {
    if (this.writing) return
    if (this.timer) { clearTimeout(this.timer); this.timer = null }
    this.writing = true
    void this.drain()
  }

  /** The single writer: takes batches until the queue is empty, retrying a failed batch until it lands. */
  private async drain(): Promise<void> {
    try {
      while (!this.abandoned && this.buf.length - this.head > 0) {
        const { batch, bytes } = this.takeBatch()
        this.inflight = batch.length
        let attempt = 0
        let ok = false
        for (;;) {
          try {
            await this.hooks.write(batch)
            ok = true
            break
          } catch (err) {
            attempt++
            this.failures++
            this.consecutiveFailures++
            this.hooks.onWriteError?.(err, attempt)
            if (this.abandoned) break
            const delay = Math.min(this.opts.retryMax, this.opts.retryBase * 2 ** Math.min(attempt - 1, 20))
            await this.backoff(delay * (0.5 + Math.random() / 2))
            if (this.abandoned) break
          }
        }
        if (this.abandoned) break // close() gave up and already counted this batch as lost
        if (ok) {
          if (attempt > 0) this.hooks.onRecover?.(attempt)
          this.consecutiveFailures = 0
          this.written += batch.length
          this.bytes -= bytes
          this.settle(batch.length)
        }
        this.inflight = 0
        this.compact()
        // Let I/O run between batches: an embedded store writes synchronously, and a backlog can be long.
        if (this.buf.length - this.head > 0) await new Promise((r) => setImmediate(r))
      }
    } finally {
      this.writing = false
      if (this.isEmpty()) {
        const ws = this.waiters
        this.waiters = []
        for (const w of ws) { if (w.timer) clearTimeout(w.timer); w.resolve(true) }
      } else if (!this.abandoned) {
        this.startWriter()
      }
    }
  }

  private settle(n: number): void {
    this.settled += n
    if (!this.waiters.length) return
    const still: Waiter[] = []
    for (const w of this.waiters) {
      if (w.target <= this.settled) { if (w.timer) clearTimeout(w.timer); w.resolve(true) } else still.push(w)
    }
    this.waiters = still
  }

  private takeBatch(): { batch: T[]; bytes: number } {
    const end = this.buf.length
    let i = this.head
    let bytes = 0
    while (i < end && i - this.head < this.opts.batchSize) {
      const s = this.sizes[i]!
      if (i > this.head && bytes + s > this.opts.batchBytes) break
      bytes += s
      i++
    }
    const batch = this.buf.slice(this.head, i)
    for (let j = this.head; j < i; j++) (this.buf as (T | undefined)[])[j] = undefined // let the records be collected once written
    this.head = i
    return { batch, bytes }
  }

  /** Reclaims the consumed front of the arrays now and then, keeping `append` O(1) amortised. */
  private compact(): void {
    if (this.head === this.buf.length) {
      this.buf = []
      this.sizes = []
      this.head = 0
    } else if (this.head > 4096 && this.head * 2 > this.buf.length) {
      this.buf = this.buf.slice(this.head)
      this.sizes = this.sizes.slice(this.head)
      this.head = 0
    }
  }

  private backoff(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => { clearTimeout(timer); this.sleep = null; resolve() }
      const timer = setTimeout(wake, ms)
      timer.unref()
      this.sleep = { timer, wake }
    })
  }
}

function stripUndefined<O extends object>(o: O): Partial<O> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<O>
}
