import type { ServerResponse } from 'node:http'

/**
 * Gathers the pieces a stream relay writes within one turn of the event loop and writes them as few
 * `res.write` calls as it can. Unchanged SSE frames are views of the upstream's own read buffer, so frames that
 * arrived in one read are adjacent in memory: their views merge into one view of the same bytes (no copy), and
 * the turn's frames go out as one write (one chunk of the chunked response), as a pipe proxy forwards a read.
 * Measured against corked per-frame writes, which already reached the socket as one `writev`, this alone
 * saves no CPU (BENCHMARKS.md: A/B 1.006); it keeps the client's framing that of the upstream's reads.
 * Adjacent text pieces (a translating door's encoded events) are joined the same way.
 */
export class WriteBatch {
  private readonly pieces: (string | Buffer)[] = []
  /**
   * The run of adjacent views being gathered (its first view, and where the run ends in that view's
   * memory): made into one view only when the run ends, not once per frame it grows by.
   */
  private run: Uint8Array | null = null
  private runEnd = 0
  /** Whether any piece was ever handed to the response (the headers went out with the first one). */
  wroteAny = false

  constructor(private readonly res: ServerResponse) {}

  /** Queues a piece after every piece queued before it ('' and empty views are nothing). */
  add(piece: string | Uint8Array): void {
    if (piece.length === 0) return
    if (typeof piece !== 'string') {
      const run = this.run
      if (run !== null && run.buffer === piece.buffer && this.runEnd === piece.byteOffset) {
        this.runEnd += piece.byteLength
        return
      }
      if (run !== null) this.endRun()
      this.run = piece
      this.runEnd = piece.byteOffset + piece.byteLength
      return
    }
    if (this.run !== null) this.endRun()
    const n = this.pieces.length
    const last = n === 0 ? null : this.pieces[n - 1]!
    if (typeof last === 'string') this.pieces[n - 1] = last + piece
    else this.pieces.push(piece)
  }

  /** Whether nothing is queued. */
  get empty(): boolean {
    return this.pieces.length === 0 && this.run === null
  }

  /**
   * Writes what is queued (several pieces as one corked `writev`). Returns false when the response's buffer is
   * past its high-water mark: the caller waits for `drain` before it queues more.
   */
  flush(): boolean {
    if (this.run !== null) this.endRun()
    const res = this.res
    const n = this.pieces.length
    if (n !== 0 && !res.destroyed && !res.writableEnded) {
      this.wroteAny = true
      if (n === 1) res.write(this.pieces[0]!)
      else {
        res.cork()
        for (let i = 0; i < n; i++) res.write(this.pieces[i]!)
        res.uncork()
      }
    }
    this.pieces.length = 0
    return !res.writableNeedDrain
  }

  private endRun(): void {
    const run = this.run!
    this.run = null
    const length = this.runEnd - run.byteOffset
    this.pieces.push(Buffer.isBuffer(run) && length === run.byteLength ? run : Buffer.from(run.buffer, run.byteOffset, length))
  }
}
