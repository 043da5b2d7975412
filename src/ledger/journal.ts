import { closeSync, fdatasync, close as closeAsync, rename as renameAsync, unlink as unlinkAsync, writeFile as writeFileAsync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { decodeFrame, encodeFrame, KIND_MESSAGES, KIND_USAGE, type FrameKind } from './journal-frame.ts'
import { claimSlot, type SlotLock } from './journal-lock.ts'

/**
 * The ledger's local append-only journal: every record is written here (one `write` on an O_APPEND file,
 * no fsync: the page cache survives the death of the process) before the client sees the answer, and
 * committed to the store later by the background queue. The journal is a run of segment files per slot
 * (`ledger-<slot>-<seq>.journal`); a checkpoint file says where replay must start, segments wholly behind
 * it are deleted, and the live total is bounded (past `maxBytes` records are refused, and counted).
 *
 * The checkpoint is the lowest position with a record not yet committed. Records after it may already be
 * in the store (the two queues commit independently): replay sends them again, and the store's unique
 * record id absorbs them.
 */
export interface JournalOptions {
  readonly dir: string
  /** Bound on the live journal (all its segments), bytes. */
  readonly maxBytes: number
  /** A segment is closed and a new one started past this size. */
  readonly segmentBytes?: number
  /** ms between fdatasync calls on the open segment (off the request path); 0: never (process crashes only). */
  readonly fsyncInterval?: number
  /**
   * Most often the checkpoint is rewritten, ms (0: on the turn after each commit). It only says where replay
   * starts (committed records replayed again are ignored by the store), so the gateway writes it at most a
   * few times a second instead of once per committed batch: each write is a file write and a rename.
   */
  readonly checkpointInterval?: number
  /** The slot to own; without one, the lowest free numbered slot. */
  readonly slot?: string
  readonly logger?: Logger
}

export type JournalKind = 'usage' | 'messages'
/** A record's place: its segment and the offset just past it. */
export interface JournalPosition { readonly seg: number; readonly off: number }
export interface ReplayedRecord { readonly kind: JournalKind; readonly value: unknown; readonly pos: JournalPosition }

export interface JournalStats {
  readonly slot: string
  readonly bytes: number
  readonly segments: number
  readonly appended: number
  /** Records refused because the journal was at its bound. */
  readonly refused: number
  readonly writeErrors: number
  readonly damaged: number
}

interface Segment {
  readonly seq: number
  readonly path: string
  size: number
  /** Where this process's interest in the segment starts (the checkpoint offset for the first one). */
  readonly start: number
  /** Records handed to the queue and not committed yet, per kind. */
  readonly pending: [number, number, number]
  /** Per kind: every record of that kind before this offset is committed. */
  readonly low: [number, number, number]
  /** Written by an earlier life and not wholly read back yet; `readUpTo` is how far replay has read. */
  replaying: boolean
  readUpTo: number
}

const KIND_OF: Record<JournalKind, FrameKind> = { usage: KIND_USAGE, messages: KIND_MESSAGES }
const NAME_OF = { [KIND_USAGE]: 'usage', [KIND_MESSAGES]: 'messages' } as const
const SEGMENT_FILE = /^ledger-([A-Za-z0-9_-]{1,32})-(\d{10})\.journal$/

export class Journal {
  readonly slot: string
  private readonly segments = new Map<number, Segment>()
  private readonly order: number[] = []
  private fd: number | null = null
  private current: Segment | null = null
  private nextSeq: number
  private bytes = 0
  private dirty = false
  private fsyncTimer: NodeJS.Timeout | null = null
  private checkpointScheduled = false
  private lastCheckpoint = ''
  private closed = false
  private appended = 0
  private refused = 0
  private writeErrors = 0
  private damaged = 0
  private readonly segmentBytes: number
  /** File work in flight off the event loop (segment deletions, checkpoint writes), and who waits for it to end. */
  private inFlight = 0
  private readonly idleWaiters: (() => void)[] = []
  /** A checkpoint write is in flight; `nextCheckpoint` is the newest one asked for meanwhile. */
  private checkpointWriting = false
  private nextCheckpoint: string | null = null
  /** Frames of `appendHeld` not written yet (their offsets already given out), and who waits for them. */
  private unwritten: Buffer[] = []
  private waiting: { readonly promise: Promise<void>; readonly resolve: () => void } | null = null
  private writeScheduled = false
  private readonly writeHeld = () => {
    this.writeScheduled = false
    this.writeUnwritten()
  }

  private constructor(private readonly opts: JournalOptions, private readonly lock: SlotLock) {
    this.slot = lock.slot
    this.segmentBytes = Math.max(64 * 1024, Math.min(opts.segmentBytes ?? 8 * 1024 * 1024, opts.maxBytes))
    const cp = this.readCheckpoint()
    const found = listSegments(opts.dir, this.slot)
    // Numbered past the checkpoint too: checkpoints are written off the event loop, so one from an earlier
    // point can land after a clean stop deleted every segment; new segments must never sit behind it.
    this.nextSeq = Math.max(found.at(-1)?.seq ?? 0, cp?.seg ?? 0) + 1
    for (const { seq, path, size } of found) {
      if (cp && seq < cp.seg) { unlinkQuiet(path); continue } // wholly committed before the crash
      const start = cp && seq === cp.seg ? Math.min(cp.off, size) : 0
      this.addSegment({ seq, path, size, start, pending: [0, 0, 0], low: [start, start, start], replaying: true, readUpTo: start })
    }
    if (opts.fsyncInterval && opts.fsyncInterval > 0) {
      this.fsyncTimer = setInterval(() => this.sync(), opts.fsyncInterval)
      this.fsyncTimer.unref()
    }
  }

  /** Takes a slot in `dir` (creating it) and reads where replay starts; nothing is written until the first append. */
  static open(opts: JournalOptions): Journal {
    mkdirSync(opts.dir, { recursive: true })
    return new Journal(opts, claimSlot(opts.dir, opts.slot))
  }

  /** Records an earlier life left behind (from the checkpoint on), still to be replayed. */
  get replayPending(): boolean {
    return this.order.some((s) => this.segments.get(s)!.replaying)
  }

  /**
   * Writes one record: its position, `'full'` when the journal is at its bound (the record is refused), or
   * `'failed'` when the write itself failed (disk full…; the caller keeps the record in memory only).
   */
  append(kind: JournalKind, value: unknown): JournalPosition | 'full' | 'failed' {
    const frame = this.frameFor(kind, value)
    if (typeof frame === 'string') return frame
    this.writeUnwritten() // the file keeps the order in which offsets were given out
    try {
      if (this.startsNewSegment(frame.length)) this.rotate()
      let done = 0
      while (done < frame.length) done += writeSync(this.fd!, frame, done, frame.length - done)
      return this.place(kind, frame.length)
    } catch (err) {
      this.writeFailed(err as Error)
      return 'failed'
    }
  }

  /**
   * Like `append`, but the record's write joins those of every other record handed over in this turn of the
   * event loop: one write for all of them, in the loop's check phase (setImmediate). The caller holds its
   * answer until `whenWritten()` resolves. At saturation a turn ends several answers, and a synchronous write
   * per record was a governed gateway's largest single cost of its own (BENCHMARKS.md, "The journal's group
   * write"). A write that fails leaves these records in memory only, as `append`'s `'failed'` does; their
   * answers go out regardless.
   */
  appendHeld(kind: JournalKind, value: unknown): JournalPosition | 'full' | 'failed' {
    const frame = this.frameFor(kind, value)
    if (typeof frame === 'string') return frame
    try {
      if (this.startsNewSegment(frame.length)) {
        this.writeUnwritten() // what is held belongs to the segment being closed
        this.rotate()
      }
    } catch (err) {
      this.writeFailed(err as Error)
      return 'failed'
    }
    this.unwritten.push(frame)
    if (!this.writeScheduled) { this.writeScheduled = true; setImmediate(this.writeHeld) }
    return this.place(kind, frame.length)
  }

  /** The record's frame, or why it cannot be journalled (closed, unencodable, past the journal's bound). */
  private frameFor(kind: JournalKind, value: unknown): Buffer | 'full' | 'failed' {
    if (this.closed) return 'failed'
    let frame: Buffer
    try { frame = encodeFrame(KIND_OF[kind], JSON.stringify(value)) } catch { return 'failed' }
    if (this.bytes + frame.length > this.opts.maxBytes) { this.refused++; return 'full' }
    return frame
  }

  private startsNewSegment(frameLength: number): boolean {
    return this.current === null || (this.current.size > 0 && this.current.size + frameLength > this.segmentBytes)
  }

  /** Counts a frame of `length` at the end of the current segment and returns its position. */
  private place(kind: JournalKind, length: number): JournalPosition {
    const seg = this.current!
    seg.size += length
    this.bytes += length
    seg.pending[KIND_OF[kind]]++
    this.dirty = true
    this.appended++
    return { seg: seg.seq, off: seg.size }
  }

  /**
   * Resolves once every record handed to `appendHeld` so far is in the file, or its write failed (null when
   * none is waiting: nothing to hold). One promise per write, shared by every answer it holds.
   */
  whenWritten(): Promise<void> | null {
    if (this.unwritten.length === 0) return null
    if (this.waiting === null) {
      let resolve!: () => void
      const promise = new Promise<void>((r) => { resolve = r })
      this.waiting = { promise, resolve }
    }
    return this.waiting.promise
  }

  /** Writes the held frames, in one write, to the current segment (where their offsets were given). */
  private writeUnwritten(): void {
    const frames = this.unwritten
    if (frames.length === 0) return
    this.unwritten = []
    if (this.fd !== null) { // else their segment was dropped after a failure: memory only
      const buf = frames.length === 1 ? frames[0]! : Buffer.concat(frames)
      try {
        let done = 0
        while (done < buf.length) done += writeSync(this.fd, buf, done, buf.length - done)
      } catch (err) {
        this.writeFailed(err as Error)
      }
    }
    const waiting = this.waiting
    this.waiting = null
    waiting?.resolve()
  }

  private writeFailed(err: Error): void {
    this.writeErrors++
    if (this.writeErrors === 1 || this.writeErrors % 1000 === 0) this.opts.logger?.error({ err: { message: err.message }, writeErrors: this.writeErrors }, 'ledger journal: a write failed; records are kept in memory only until it works again')
    // Whatever part of the write reached the file is damage: the next record goes to a fresh segment.
    this.detach()
  }

  /** Records of `kind` at these positions are in the store. */
  committed(kind: JournalKind, positions: readonly (JournalPosition | null)[]): void {
    const k = KIND_OF[kind]
    for (const pos of positions) {
      if (pos === null) continue
      const seg = this.segments.get(pos.seg)
      if (!seg) continue
      seg.pending[k]--
      if (pos.off > seg.low[k]) seg.low[k] = pos.off
    }
    if (!this.checkpointScheduled) {
      this.checkpointScheduled = true
      const write = () => { this.checkpointScheduled = false; if (!this.closed) this.checkpoint() }
      const every = this.opts.checkpointInterval ?? 0
      if (every > 0) setTimeout(write, every).unref()
      else setImmediate(write)
    }
  }

  /**
   * Reads back what an earlier life left (from the checkpoint on), handing records to `sink` in chunks;
   * the next chunk is read once `sink` resolves. Reading a segment stops at its first damaged frame (a torn
   * last write, a checksum mismatch), which is logged. Returns the number of records handed over.
   */
  async replay(sink: (records: ReplayedRecord[]) => Promise<void>, chunk = 2000): Promise<number> {
    let total = 0
    for (const seq of [...this.order]) {
      const seg = this.segments.get(seq)!
      if (!seg.replaying) continue
      let buf: Buffer
      try { buf = readFileSync(seg.path) } catch (err) {
        this.opts.logger?.error({ err: { message: (err as Error).message }, file: seg.path }, 'ledger journal: a segment could not be read; its records are skipped')
        seg.replaying = false
        continue
      }
      let off = seg.start
      let batch: ReplayedRecord[] = []
      const hand = async () => {
        if (!batch.length) return
        const b = batch
        batch = []
        for (const r of b) seg.pending[KIND_OF[r.kind]]++
        seg.readUpTo = b.at(-1)!.pos.off
        total += b.length
        await sink(b)
      }
      for (;;) {
        const f = decodeFrame(buf, off)
        if (f === null) break
        let value: unknown
        if (!('damage' in f)) {
          try { value = JSON.parse(f.payload) } catch { value = undefined }
        }
        if ('damage' in f || value === undefined || value === null) {
          this.damaged++
          this.opts.logger?.warn({ file: seg.path, offset: off, damage: 'damage' in f ? f.damage : 'payload', discardedBytes: buf.length - off },
            'ledger journal: damaged record; reading of this segment stops at the last whole record')
          break
        }
        batch.push({ kind: NAME_OF[f.kind], value, pos: { seg: seq, off: f.end } })
        off = f.end
        if (batch.length >= chunk) await hand()
      }
      await hand()
      seg.readUpTo = seg.size
      seg.replaying = false
    }
    this.checkpoint()
    return total
  }

  stats(): JournalStats {
    return { slot: this.slot, bytes: this.bytes, segments: this.order.length, appended: this.appended, refused: this.refused, writeErrors: this.writeErrors, damaged: this.damaged }
  }

  /** Writes the checkpoint; when everything is committed, removes the segments too. Releases the slot. */
  close(): void {
    if (this.closed) return
    this.writeHeld()
    this.closed = true
    if (this.fsyncTimer) clearInterval(this.fsyncTimer)
    if (this.fd !== null) { try { closeSync(this.fd) } catch { /* gone */ } this.fd = null }
    this.current = null
    this.checkpoint()
    this.lock.release()
  }

  /** Resolves once the file work handed off the event loop (segment deletions, checkpoint writes) is done. */
  settled(): Promise<void> {
    return this.inFlight === 0 ? Promise.resolve() : new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  private landed(): void {
    if (--this.inFlight === 0) for (const done of this.idleWaiters.splice(0)) done()
  }

  /** Moves the checkpoint to the first uncommitted record and deletes segments wholly behind it. */
  private checkpoint(): void {
    let cp: JournalPosition | null = null
    for (const seq of this.order) {
      const seg = this.segments.get(seq)!
      let off = Infinity
      if (seg.replaying) off = seg.readUpTo
      for (const k of [KIND_USAGE, KIND_MESSAGES]) if (seg.pending[k] > 0 && seg.low[k] < off) off = seg.low[k]
      if (off !== Infinity) { cp = { seg: seq, off }; break }
    }
    const allCommitted = cp === null
    // Everything committed: replay would start past the last record written.
    cp ??= this.current ? { seg: this.current.seq, off: this.current.size } : { seg: this.nextSeq, off: 0 }
    if (this.closed && allCommitted) {
      // A clean stop with nothing left to commit: no file is needed to start again.
      for (const seg of this.segments.values()) unlinkQuiet(seg.path)
      this.segments.clear()
      this.order.length = 0
      this.bytes = 0
      unlinkQuiet(this.checkpointPath())
      return
    }
    while (this.order.length && this.order[0]! < cp.seg && this.segments.get(this.order[0]!) !== this.current) {
      const seg = this.segments.get(this.order.shift()!)!
      this.segments.delete(seg.seq)
      this.bytes -= seg.size
      // Off the event loop: freeing an 8 MiB segment's pages takes ≈ 1.9 ms (measured here, page cache only),
      // a stall for every request in flight. A crash before it is done leaves a segment behind the
      // checkpoint, which the next start deletes.
      this.inFlight++
      unlinkAsync(seg.path, () => this.landed()) // an error: already gone, or left for the next start
    }
    const text = JSON.stringify(cp)
    if (text === this.lastCheckpoint) return
    this.lastCheckpoint = text
    if (!this.closed) return this.writeCheckpointAsync(text)
    // The last one, at a clean stop: written before close returns (its own temporary file, so a write still
    // in flight cannot mix into it; one landing after it is from an earlier point, which is safe).
    try {
      const tmp = `${this.checkpointPath()}.tmp-close`
      writeFileSync(tmp, text)
      renameSync(tmp, this.checkpointPath())
    } catch (err) {
      this.checkpointFailed(err as Error)
    }
  }

  /**
   * Writes the checkpoint off the event loop, one write at a time, the newest position asked for meanwhile
   * next. Measured here: the `rename` over the old checkpoint blocked for 100–390 ms while the SQLite
   * ledger's pages were being written back (ext4 flushes a file renamed over another), a stall for every
   * request in flight. A checkpoint that lands late only makes replay start earlier: no record is lost.
   */
  private writeCheckpointAsync(text: string): void {
    if (this.checkpointWriting) { this.nextCheckpoint = text; return }
    this.checkpointWriting = true
    this.inFlight++
    const tmp = `${this.checkpointPath()}.tmp`
    const done = (err: Error | null) => {
      if (err) { this.checkpointFailed(err); if (this.lastCheckpoint === text) this.lastCheckpoint = '' }
      this.checkpointWriting = false
      const next = this.nextCheckpoint
      this.nextCheckpoint = null
      if (next !== null && !this.closed) this.writeCheckpointAsync(next)
      this.landed()
    }
    writeFileAsync(tmp, text, (err) => {
      if (err) return done(err)
      // Stopped meanwhile: the stop wrote (or removed) the last checkpoint itself.
      if (this.closed) return unlinkAsync(tmp, () => done(null))
      renameAsync(tmp, this.checkpointPath(), done)
    })
  }

  private checkpointFailed(err: Error): void {
    this.opts.logger?.warn({ err: { message: err.message } }, 'ledger journal: the checkpoint could not be written; replay will start earlier (no record is lost)')
  }

  private rotate(): void {
    this.detach()
    const seq = this.nextSeq++
    const path = join(this.opts.dir, `ledger-${this.slot}-${String(seq).padStart(10, '0')}.journal`)
    this.fd = openSync(path, 'a')
    const seg: Segment = { seq, path, size: 0, start: 0, pending: [0, 0, 0], low: [0, 0, 0], replaying: false, readUpTo: 0 }
    this.addSegment(seg)
    this.current = seg
  }

  /** Stops writing to the current segment (it stays until its records are committed). */
  private detach(): void {
    const fd = this.fd
    this.fd = null
    this.current = null
    if (fd === null) return
    // With fsync on, the segment's last writes are synced before its file descriptor goes.
    if (this.opts.fsyncInterval && this.dirty) fdatasync(fd, () => closeAsync(fd, () => {}))
    else { try { closeSync(fd) } catch { /* gone */ } }
    this.dirty = false
  }

  private sync(): void {
    this.writeUnwritten()
    if (this.fd === null || !this.dirty) return
    this.dirty = false
    const fd = this.fd
    fdatasync(fd, (err) => { if (err && this.fd === fd) this.opts.logger?.warn({ err: { message: err.message } }, 'ledger journal: fdatasync failed') })
  }

  private addSegment(seg: Segment): void {
    this.segments.set(seg.seq, seg)
    this.order.push(seg.seq)
    this.bytes += seg.size
  }

  private checkpointPath(): string {
    return join(this.opts.dir, `ledger-${this.slot}.checkpoint`)
  }

  private readCheckpoint(): JournalPosition | null {
    try {
      const cp = JSON.parse(readFileSync(this.checkpointPath(), 'utf8')) as JournalPosition
      return Number.isInteger(cp.seg) && Number.isInteger(cp.off) ? cp : null
    } catch {
      return null // none, or unreadable: replay everything there is (the store ignores what it already has)
    }
  }
}

/** The slots that have journal files in `dir` (for `sluice ledger recover`). */
export function journalSlots(dir: string): string[] {
  const slots = new Set<string>()
  for (const name of readdirQuiet(dir)) {
    const m = SEGMENT_FILE.exec(name) ?? /^ledger-([A-Za-z0-9_-]{1,32})\.checkpoint$/.exec(name)
    if (m) slots.add(m[1]!)
  }
  return [...slots].sort()
}

function listSegments(dir: string, slot: string): { seq: number; path: string; size: number }[] {
  const out: { seq: number; path: string; size: number }[] = []
  for (const name of readdirQuiet(dir)) {
    const m = SEGMENT_FILE.exec(name)
    if (!m || m[1] !== slot) continue
    const path = join(dir, name)
    out.push({ seq: Number(m[2]), path, size: statSync(path).size })
  }
  return out.sort((a, b) => a.seq - b.seq)
}

function readdirQuiet(dir: string): string[] {
  try { return readdirSync(dir) } catch { return [] }
}

function unlinkQuiet(path: string): void {
  try { unlinkSync(path) } catch { /* already gone */ }
}
