import { randomUUID } from 'node:crypto'
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs'
import { rm } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type busboy from 'busboy'
import { GatewayError, GW_ERR } from '../core/errors.ts'
import { lazyPackage } from '../core/lazy-package.ts'
import { locateModelValue, ModelValueLocator, replaceRange } from './multipart-model.ts'

// The multipart parser, loaded by the first upload, not at start (src/core/lazy-package.ts says why).
const busboyPackage = lazyPackage<typeof busboy>('busboy')

/** Config `media` as the upload needs it. */
export interface UploadLimits {
  readonly maxUploadBytes: number
  readonly routingPrefixBytes: number
  readonly spoolDir?: string
}

/** What one multipart route expects of its upload. */
export interface UploadSpec {
  /** File part names of which at least one must be present (`file`; `image` or `image[]`). */
  readonly fileParts: readonly string[]
}

/** The small fields the gateway reads from an upload (routing, pricing, the answer's form); the rest pass unread. */
const READ_FIELDS = new Set(['model', 'size', 'n', 'quality', 'response_format', 'stream', 'output_format'])
const MAX_FIELD_BYTES = 64 * 1024
/** Held chunks of an upload streamed through, beyond which the client is paused until the backend reads. */
const QUEUE_HIGH_BYTES = 1024 * 1024

const invalid = (message: string, param: string | null = null) => new GatewayError(GW_ERR.INVALID_REQUEST, message, { param })
const incomplete = () => new GatewayError(GW_ERR.UPLOAD_INCOMPLETE, 'The multipart upload ended before its last part arrived; nothing was processed.')

/** One try's request body: the bytes as a pull-driven iterable, and their length when known. */
export interface UploadBody {
  readonly body: AsyncIterable<Buffer>
  readonly length: number | null
}

/**
 * A multipart upload read once, as it arrives, and never held whole. Every chunk is teed through busboy
 * (only to read the small fields and count the file parts' bytes) and on to the backend:
 *
 * - While the `model` field is not known, chunks are held in memory up to `routingPrefixBytes`. When the
 *   field arrives within that prefix (or the model is in the path), the upload is streamed through: the
 *   backend reads the held prefix, then the rest as the client sends it (the client is paused whenever the
 *   backend reads slower). A retry or failover is then possible only until the first byte went upstream.
 * - When a file part comes first and outgrows the prefix, the upload is spooled to a temp file (bounded by
 *   `maxUploadBytes`, removed when the request ends) and sent once complete; any member may then be tried.
 *
 * The last chunk is held back until the form has been checked whole (closing boundary, the file part, a
 * model), so a backend never receives a complete body the gateway refuses. Past `maxUploadBytes` the
 * upload is refused (413) and the backend's request aborted; a body cut midway aborts it too.
 */
export class StreamedUpload {
  readonly fields = new Map<string, string>()
  readonly fileBytes = new Map<string, number>()
  /** Resolves when routing can start (the model is known), rejects with the upload's error. */
  readonly routable: Promise<void>
  /** Resolves when the whole body arrived and passed the checks, rejects with the upload's error. */
  readonly complete: Promise<void>
  /** Set when the upload failed (too large, cut, malformed): the client's fault, answered before any backend error. */
  error: GatewayError | null = null
  /** Whether a backend has read any of the body (a stream-through upload cannot be sent twice). */
  spent = false

  private readonly contentLength: number | null
  private received = 0
  private mode: 'prefix' | 'through' | 'spool' = 'prefix'
  private held: Buffer[] = []
  private heldBytes = 0
  private tail: Buffer | null = null
  private ended = false
  private reqEnded = false
  private modelKnown: boolean
  private readonly locator: ModelValueLocator
  private spoolPath: string | null = null
  private spool: WriteStream | null = null
  private readonly parser: busboy.Busboy
  private wake: (() => void) | null = null
  private resolveRoutable!: () => void
  private rejectRoutable!: (e: GatewayError) => void
  private resolveComplete!: () => void
  private rejectComplete!: (e: GatewayError) => void
  private disposed = false
  /** The first bytes of the `file` part: a WAV header gives the audio's duration when the answer does not. */
  private head = Buffer.alloc(0)
  /** The try now sending a streamed upload: another (a hedge) waits for it to settle before it may claim the body. */
  private turn: Promise<void> = Promise.resolve()

  constructor(private readonly req: IncomingMessage, private readonly spec: UploadSpec, private readonly limits: UploadLimits, modelFromPath: string | null) {
    this.routable = new Promise((res, rej) => { this.resolveRoutable = res; this.rejectRoutable = rej })
    this.complete = new Promise((res, rej) => { this.resolveComplete = res; this.rejectComplete = rej })
    this.routable.catch(() => {})
    this.complete.catch(() => {})
    const declared = req.headers['content-length']
    this.contentLength = declared === undefined ? null : Number(declared)
    const contentType = String(req.headers['content-type'] ?? '')
    const boundary = /boundary=(?:"([^"]{1,70})"|([^;\s]{1,70}))/i.exec(contentType)
    if (!/^multipart\/form-data/i.test(contentType) || !boundary) throw invalid('This endpoint takes a multipart/form-data body with a boundary.')
    this.locator = new ModelValueLocator(boundary[1] ?? boundary[2]!)
    this.modelKnown = modelFromPath !== null
    this.parser = busboyPackage()({ headers: req.headers, limits: { fieldSize: MAX_FIELD_BYTES, fields: 64, files: 16, parts: 96 } })
    this.wireParser()
    req.on('data', (chunk: Buffer) => this.onData(chunk))
    req.on('end', () => { this.reqEnded = true; this.parser.end() })
    req.on('error', () => this.fail(incomplete()))
    req.on('close', () => { if (!this.reqEnded) this.fail(incomplete()) })
    if (this.modelKnown) this.startThrough()
  }

  /**
   * Seconds of audio in the `file` part when it is a canonical WAV (RIFF/WAVE, data size over byte rate),
   * else null: for pricing a per-minute model whose answer carries no duration (translations, text formats).
   */
  audioSeconds(): number | null {
    const h = this.head
    if (h.length < 44 || h.toString('latin1', 0, 4) !== 'RIFF' || h.toString('latin1', 8, 12) !== 'WAVE' || h.toString('latin1', 36, 40) !== 'data') return null
    const byteRate = h.readUInt32LE(28)
    const data = Math.min(h.readUInt32LE(40), Math.max(0, (this.fileBytes.get('file') ?? 0) - 44))
    return byteRate > 0 ? data / byteRate : null
  }

  /** How the upload goes to the backend (the `x-sluice-upload` response header): as it arrives, or from a spool file once whole. */
  get delivery(): 'streamed' | 'spooled' {
    return this.mode === 'spool' ? 'spooled' : 'streamed'
  }

  /** The client's content type (its boundary), which the backend gets unchanged. */
  get contentType(): string {
    return String(this.req.headers['content-type'])
  }

  private wireParser(): void {
    const p = this.parser
    p.on('field', (name, value, info) => {
      if (!READ_FIELDS.has(name)) return
      if (info.valueTruncated) return this.fail(invalid(`The "${name}" field is too long.`, name))
      if (name === 'model' && this.fields.has('model')) return this.fail(invalid('The "model" field is given twice.', 'model'))
      this.fields.set(name, value)
      if (name === 'model' && !this.modelKnown) {
        this.modelKnown = true
        if (value === '') return this.fail(invalid('You must provide a model parameter.', 'model'))
        if (this.mode === 'prefix') this.startThrough()
      }
    })
    p.on('file', (name, file) => {
      let n = this.fileBytes.get(name) ?? 0
      file.on('data', (c: Buffer) => {
        if (name === 'file' && this.head.length < 44) this.head = Buffer.concat([this.head, c.subarray(0, 44 - this.head.length)])
        n += c.length
        this.fileBytes.set(name, n)
      })
      // A form cut inside a file part errors the part's stream too; the parser's own error is the one answered.
      file.on('error', () => {})
      this.fileBytes.set(name, n)
      file.resume()
    })
    p.on('partsLimit', () => this.fail(invalid('The upload has more parts than the gateway accepts.')))
    p.on('filesLimit', () => this.fail(invalid('The upload has more files than the gateway accepts.')))
    p.on('fieldsLimit', () => this.fail(invalid('The upload has more fields than the gateway accepts.')))
    p.on('error', (err: Error) => this.fail(/Unexpected end of form/i.test(err.message) ? incomplete() : invalid('The multipart body is malformed.')))
    p.on('close', () => this.onFormEnd())
  }

  private onData(chunk: Buffer): void {
    if (this.error) return
    this.received += chunk.length
    if (this.received > this.limits.maxUploadBytes) return this.fail(tooLarge(this.limits.maxUploadBytes))
    this.locator.push(chunk)
    // Parsed first, so a `model` field completed by this chunk switches the mode before the chunk is placed.
    this.parser.write(chunk)
    if (this.error) return
    switch (this.mode) {
      case 'prefix':
        this.held.push(chunk)
        this.heldBytes += chunk.length
        if (this.heldBytes > this.limits.routingPrefixBytes) this.startSpool()
        break
      case 'through':
        this.queue(chunk)
        break
      case 'spool':
        if (!this.spool!.write(chunk)) {
          this.req.pause()
          this.spool!.once('drain', () => this.req.resume())
        }
        break
    }
  }

  /** Streaming through: what is held goes to the backend first, the last chunk always one step behind. */
  private startThrough(): void {
    this.mode = 'through'
    const held = this.held
    this.held = []
    this.heldBytes = 0
    for (const c of held) this.queue(c)
    this.resolveRoutable()
  }

  private queue(chunk: Buffer): void {
    if (this.tail) {
      this.held.push(this.tail)
      this.heldBytes += this.tail.length
    }
    this.tail = chunk
    if (this.heldBytes > QUEUE_HIGH_BYTES) this.req.pause()
    this.poke()
  }

  private startSpool(): void {
    this.mode = 'spool'
    this.spoolPath = join(this.limits.spoolDir ?? tmpdir(), `sluice-upload-${randomUUID()}`)
    this.spool = createWriteStream(this.spoolPath, { mode: 0o600 })
    this.spool.on('error', () => this.fail(new GatewayError(GW_ERR.SERVICE_UNAVAILABLE, 'The gateway could not spool the upload.')))
    for (const c of this.held) this.spool.write(c)
    this.held = []
    this.heldBytes = 0
  }

  private onFormEnd(): void {
    if (this.error || this.ended) return
    if (this.contentLength !== null && this.received !== this.contentLength) return this.fail(incomplete())
    if (!this.modelKnown) return this.fail(invalid('You must provide a model parameter.', 'model'))
    if (!this.spec.fileParts.some((name) => this.fileBytes.has(name))) {
      return this.fail(invalid(`The upload has no "${this.spec.fileParts[0]}" file part.`, this.spec.fileParts[0]!))
    }
    this.ended = true
    if (this.mode === 'spool') {
      this.spool!.end(() => {
        if (this.error) return
        this.resolveRoutable()
        this.resolveComplete()
      })
      return
    }
    this.resolveComplete()
    this.poke()
  }

  private fail(err: GatewayError): void {
    if (this.error || this.disposed) return
    if (this.ended && err.code === GW_ERR.UPLOAD_INCOMPLETE.code) return // the connection closing after a whole body is no error
    this.error = err
    this.rejectRoutable(err)
    this.rejectComplete(err)
    this.parser.removeAllListeners('close')
    this.poke()
    this.req.pause()
  }

  private poke(): void {
    const w = this.wake
    this.wake = null
    w?.()
  }

  /** Where the model value is in the raw bytes, for a rewrite (null: the form has none, the model was in the path). */
  private modelRange(): { start: number; end: number } | null {
    return locateModelValue(this.locator)
  }

  /**
   * Waits until no other try is sending this upload (hedged tries of a streamed upload go one after the
   * other: one body cannot feed two requests); the returned function ends this try's turn. A spooled
   * upload is read afresh per try, so its tries run side by side.
   */
  async turnFor(signal: AbortSignal): Promise<() => void> {
    if (this.mode === 'spool') return () => {}
    const previous = this.turn
    let end!: () => void
    this.turn = new Promise<void>((resolve) => { end = resolve })
    await Promise.race([previous, new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }))])
    return end
  }

  /**
   * The body for one try, with the `model` field's value replaced when the backend knows the model by
   * another name. A stream-through upload can be claimed again only while no byte of it went upstream.
   */
  claim(model: string | null): UploadBody {
    if (this.error) throw this.error
    const original = this.fields.get('model')
    let range: { start: number; end: number } | null = null
    let replacement: Buffer | null = null
    if (model !== null && original !== undefined && model !== original) {
      range = this.modelRange()
      if (range === null) throw invalid('The "model" field must be a plain form field to be routed.', 'model')
      replacement = Buffer.from(model)
    }
    const delta = replacement && range ? replacement.length - (range.end - range.start) : 0
    const length = this.mode === 'spool' ? this.received + delta : this.contentLength === null ? null : this.contentLength + delta
    const source = this.mode === 'spool' ? this.spooled() : this.streamed()
    return { body: range && replacement ? replaceRange(source, range, replacement) : source, length }
  }

  private async *spooled(): AsyncGenerator<Buffer> {
    // Read afresh for every try: a spooled upload is never spent.
    for await (const chunk of createReadStream(this.spoolPath!, { highWaterMark: 64 * 1024 })) {
      yield chunk as Buffer
    }
  }

  private async *streamed(): AsyncGenerator<Buffer> {
    if (this.spent) throw new GatewayError(GW_ERR.BAD_GATEWAY, 'The upload was already sent to a backend and cannot be sent again.')
    for (;;) {
      if (this.error) throw this.error
      if (this.held.length) {
        const chunk = this.held.shift()!
        this.heldBytes -= chunk.length
        if (this.heldBytes <= QUEUE_HIGH_BYTES / 2 && this.req.isPaused() && !this.error) this.req.resume()
        this.spent = true
        yield chunk
        continue
      }
      if (this.ended) {
        const last = this.tail
        this.tail = null
        if (last) { this.spent = true; yield last }
        return
      }
      if (this.req.isPaused() && !this.error) this.req.resume()
      await new Promise<void>((resolve) => { this.wake = resolve })
    }
  }

  /** Stops reading and removes the spool file; called when the request ends, however it ended. */
  dispose(): void {
    if (this.disposed) return
    this.disposed = true
    this.held = []
    this.tail = null
    this.poke()
    this.spool?.destroy()
    if (this.spoolPath) void rm(this.spoolPath, { force: true }).catch(() => {})
  }

  /** Whether the client is still sending (an answer given now must close the connection). */
  get unfinished(): boolean {
    return !this.ended
  }
}

export function tooLarge(max: number): GatewayError {
  return new GatewayError(GW_ERR.REQUEST_TOO_LARGE, `The upload is larger than the gateway accepts (${max} bytes).`)
}
