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
  /** Whether any piece was ever handed to the response (the headers went out with the first one). */
  wroteAny = false

  constructor(private readonly res: ServerResponse) {}

  /** Queues a piece after every piece queued before it ('' and empty views are nothing). */
  add(piece: string | Uint8Array): void {
    if (piece.length === 0) return
    const n = this.pieces.length
    const last = n === 0 ? null : this.pieces[n - 1]!
    if (typeof piece === 'string') {
      if (typeof last === 'string') this.pieces[n - 1] = last + piece
      else this.pieces.push(piece)
      return
    }
    if (last !== null && typeof last !== 'string' && last.buffer === piece.buffer && last.byteOffset + last.byteLength === piece.byteOffset) {
      this.pieces[n - 1] = Buffer.from(last.buffer, last.byteOffset, last.byteLength + piece.byteLength)
      return
    }
    this.pieces.push(Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength))
  }

  /** Whether nothing is queued. */
  get empty(): boolean {
    return this.pieces.length === 0
  }

  /**
   * Writes what is queued (several pieces as one corked `writev`). Returns false when the response's buffer is
   * past its high-water mark: the caller waits for `drain` before it queues more.
   */
  flush(): boolean {
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
}
