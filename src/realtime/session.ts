import type { Logger } from 'pino'
import type WebSocket from 'ws'
import type { GatewayError } from '../core/errors.ts'
import type { RealtimeConfig } from './config.ts'
import { errorEvent, isOutputDelta, outputCapOf, parseClientEvent, responseIdOf, SCAN_ABOVE_BYTES, usageFromRealtime, type RealtimeErrorEvent } from './events.ts'
import type { SessionGovernor } from './governance.ts'
import type { SessionEnd } from './metrics.ts'

/** Bytes written to one side and not yet flushed past which the other side is no longer read (backpressure). */
const HIGH_WATER = 4 * 1024 * 1024
const LOW_WATER = 1024 * 1024
/** How long a closing handshake may take before the socket is cut (the upstream is gone within 1 s of the client). */
const CLOSE_GRACE_MS = 500
/** Bytes of a server event's head searched for its type (OpenAI writes `type` first). */
const SNIFF = 160
const TYPE_RE = /"type"\s*:\s*"([a-z_.]{1,64})"/
const RESPONSE_ID_RE = /"response_id"\s*:\s*"([A-Za-z0-9._:-]{1,128})"/

/** Close codes a peer may send (RFC 6455 §7.4): others (1005, 1006, 1015) are replaced when relayed. */
const sendable = (code: number) => (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)

export interface SessionOptions {
  readonly id: string
  readonly model: string
  readonly client: WebSocket
  readonly upstream: WebSocket
  readonly governor: SessionGovernor
  readonly cfg: RealtimeConfig
  readonly now: () => number
  readonly logger: Logger
  /** Called once when both sides are done with (metrics, the in-flight slot, the session list). */
  readonly onEnd: (reason: SessionEnd) => void
}

interface Queued { readonly data: Buffer; readonly reserve: { cap: number | null; eventId: string | null } | null }

/**
 * One Realtime session: two WebSockets and the events between them, relayed as they come (frames are
 * forwarded as the bytes they arrived as, never re-encoded, never gathered). Client events are parsed
 * once, for governance: a `response.create` waits for its reservation (later events queue behind it, so
 * their order holds); everything else goes straight up. Server events are read only when they matter
 * to governance (`response.created`, `response.done`, `error`, the first delta of a response).
 */
export class RealtimeSession {
  private readonly queue: Queued[] = []
  private draining = false
  private queuedBytes = 0
  private upPending = 0
  private downPending = 0
  private clientPaused = false
  private upstreamPaused = false
  private lastActivity: number
  private idleTimer: NodeJS.Timeout | null = null
  private maxTimer: NodeJS.Timeout | null = null
  private ended: SessionEnd | null = null
  private readonly startedAt: number

  constructor(private readonly o: SessionOptions) {
    this.startedAt = o.now()
    this.lastActivity = this.startedAt
    const { client, upstream } = o
    client.on('message', (data, isBinary) => this.fromClient(data as Buffer, isBinary))
    upstream.on('message', (data, isBinary) => this.fromUpstream(data as Buffer, isBinary))
    client.on('close', (code) => this.end(code === 1009 ? 'message_too_large' : 'client_closed', { upstream: [1000, 'client closed'] }))
    upstream.on('close', (code, reason) => this.end('upstream_closed', { client: upstreamClose(code, reason) }))
    client.on('error', (err) => {
      // ws reports a message over maxPayload as an error, then closes the socket with 1009 itself.
      const tooBig = (err as { code?: string }).code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'
      this.end(tooBig ? 'message_too_large' : 'client_closed', { upstream: [1000, 'client closed'] })
    })
    upstream.on('error', () => this.end('upstream_closed', { client: [1011, 'the backend connection failed'] }))
    upstream.resume() // paused since its handshake (upstream.ts), so its first events wait for these handlers
    this.armIdle()
    this.maxTimer = setTimeout(() => this.expire(), o.cfg.maxDuration)
    this.maxTimer.unref?.()
  }

  /** Ends the session from outside (gateway shutdown). */
  shutdown(): void {
    this.end('shutdown', { client: [1001, 'the gateway is shutting down'], upstream: [1001, 'going away'] })
  }

  private fromClient(data: Buffer, isBinary: boolean): void {
    if (this.ended) return
    this.lastActivity = this.o.now()
    if (isBinary) {
      this.toClient(errorEvent('invalid_request_error', 'invalid_event', 'Binary WebSocket messages are not Realtime events: send each event as a JSON text message (audio goes base64-encoded in input_audio_buffer.append).'))
      return
    }
    const parsed = parseClientEvent(data)
    if (!parsed.ok) {
      this.toClient(errorEvent('invalid_request_error', parsed.code, parsed.message))
      return
    }
    const { type, json, eventId, bytes } = parsed.event
    const scanned = bytes > SCAN_ABOVE_BYTES
    const gov = this.o.governor
    let reserve: Queued['reserve'] = null
    switch (type) {
      case 'response.create':
        reserve = { cap: outputCapOf(json), eventId }
        break
      case 'session.update': {
        const cap = outputCapOf(json)
        if (cap !== null) gov.sessionOutputCap = cap
        const s = json.session as { instructions?: unknown } | undefined
        if (s && typeof s.instructions === 'string') gov.addContext(s.instructions.length / 4)
        break
      }
      case 'conversation.item.create':
        // A large item was not parsed: it is an image or audio, priced by the response that reads it.
        gov.addContext(scanned ? 85 : itemTokens(json.item))
        break
      case 'input_audio_buffer.append':
        if (scanned) gov.addContext(audioTokens(bytes))
        else if (typeof json.audio === 'string') gov.addContext(audioTokens(json.audio.length))
        break
    }
    if (reserve === null && this.queue.length === 0 && !this.draining) return this.toUpstream(data)
    this.queue.push({ data, reserve })
    this.queuedBytes += data.length
    if (this.queuedBytes > HIGH_WATER) this.pauseClient()
    if (!this.draining) void this.drain()
  }

  /** Sends queued client events in order, each `response.create` only once its reservation is made. */
  private async drain(): Promise<void> {
    this.draining = true
    try {
      while (this.queue.length > 0 && !this.ended) {
        const item = this.queue.shift()!
        this.queuedBytes -= item.data.length
        if (item.reserve) {
          const refused = await this.o.governor.reserve(item.reserve.cap, item.reserve.eventId)
          if (this.ended) return
          if (refused) return this.refuse(refused, item.reserve.eventId)
        }
        this.toUpstream(item.data)
      }
    } catch (err) {
      this.o.logger.error({ err, session: this.o.id }, 'realtime: governing a response failed')
      this.end('error', { client: [1011, 'internal error'], upstream: [1000, 'closed'] })
    } finally {
      this.draining = false
      if (this.queuedBytes <= LOW_WATER) this.resumeClient()
    }
  }

  private fromUpstream(data: Buffer, isBinary: boolean): void {
    if (this.ended) return
    this.lastActivity = this.o.now()
    if (!isBinary) this.observe(data)
    this.downPending += data.length
    this.o.client.send(data, { binary: isBinary }, () => {
      this.downPending -= data.length
      if (this.upstreamPaused && this.downPending <= LOW_WATER) { this.upstreamPaused = false; this.o.upstream.resume() }
    })
    if (!this.upstreamPaused && this.downPending > HIGH_WATER) { this.upstreamPaused = true; this.o.upstream.pause() }
  }

  /** What governance reads of a server event, before the client sees it (so the ledger row comes first). */
  private observe(data: Buffer): void {
    const head = data.toString('latin1', 0, Math.min(SNIFF, data.length))
    const type = TYPE_RE.exec(head)?.[1]
    const gov = this.o.governor
    // An event whose type is not at its head is parsed to find it, unless it is large (then it is relayed unread).
    if ((type === undefined && data.length <= SCAN_ABOVE_BYTES) || type === 'response.created' || type === 'response.done' || type === 'error') {
      let json: Record<string, unknown>
      try { json = JSON.parse(data.toString('utf8')) as Record<string, unknown> } catch { return }
      const t = json.type
      if (t === 'response.created') {
        const id = responseIdOf(json)
        if (id && !gov.bind(id)) {
          // The server started this response itself (voice activity): it is reserved now, and a session
          // over its limit is ended (the response already started upstream is cut with it).
          void gov.reserve(null, null, id).then((refused) => { if (refused && !this.ended) this.refuse(refused, null) })
        }
      } else if (t === 'response.done') {
        const r = json.response as { usage?: unknown; status?: unknown } | undefined
        const id = responseIdOf(json)
        if (id) gov.done(id, usageFromRealtime(r?.usage), typeof r?.status === 'string' ? r.status : null)
      } else if (t === 'error') {
        const e = json.error as { event_id?: unknown } | undefined
        gov.refusedByUpstream(typeof e?.event_id === 'string' ? e.event_id : null)
      }
      return
    }
    if (type !== undefined && isOutputDelta(type) && gov.awaitingFirstOutput()) {
      const id = RESPONSE_ID_RE.exec(data.toString('latin1', 0, Math.min(512, data.length)))?.[1]
      if (id) gov.firstOutput(id)
    }
  }

  private toUpstream(data: Buffer): void {
    this.upPending += data.length
    this.o.upstream.send(data, { binary: false }, () => {
      this.upPending -= data.length
      if (this.upPending <= LOW_WATER && this.queuedBytes <= LOW_WATER) this.resumeClient()
    })
    if (this.upPending > HIGH_WATER) this.pauseClient()
  }

  private toClient(ev: RealtimeErrorEvent): void {
    if (this.o.client.readyState === 1) this.o.client.send(JSON.stringify(ev))
  }

  private pauseClient(): void {
    if (!this.clientPaused) { this.clientPaused = true; this.o.client.pause() }
  }

  private resumeClient(): void {
    if (this.clientPaused && !this.ended) { this.clientPaused = false; this.o.client.resume() }
  }

  /** A limit refused a response: the Realtime `error` event, then the session is closed (1008, policy violation). */
  private refuse(err: GatewayError, clientEventId: string | null): void {
    this.toClient(errorEvent(err.type, err.code, err.message, { clientEventId }))
    const code = err.status >= 500 ? 1011 : 1008
    this.end('limit', { client: [code, err.code.slice(0, 64)], upstream: [1000, 'closed'] })
  }

  private armIdle(): void {
    const idle = this.o.cfg.idleTimeout
    const left = idle - (this.o.now() - this.lastActivity)
    this.idleTimer = setTimeout(() => {
      if (this.ended) return
      if (this.o.now() - this.lastActivity >= idle) {
        this.toClient(errorEvent('invalid_request_error', 'session_idle_timeout', `The session was closed after ${Math.round(idle / 1000)} seconds without an event.`))
        this.end('idle_timeout', { client: [1001, 'idle timeout'], upstream: [1000, 'closed'] })
      } else this.armIdle()
    }, Math.max(10, left))
    this.idleTimer.unref?.()
  }

  /** As OpenAI does at its 60-minute cap: an `error` event `session_expired`, then close 1001. */
  private expire(): void {
    if (this.ended) return
    const minutes = this.o.cfg.maxDuration / 60_000
    const span = minutes >= 1 && Number.isInteger(minutes) ? `${minutes} minutes` : `${Math.round(this.o.cfg.maxDuration / 1000)} seconds`
    const message = `Your session hit the maximum duration of ${span}.`
    this.toClient(errorEvent('invalid_request_error', 'session_expired', message))
    this.end('max_duration', { client: [1001, message.slice(0, 120)], upstream: [1000, 'closed'] })
  }

  private end(reason: SessionEnd, close: { client?: readonly [number, string]; upstream?: readonly [number, string] }): void {
    if (this.ended) return
    this.ended = reason
    if (this.idleTimer) clearTimeout(this.idleTimer)
    if (this.maxTimer) clearTimeout(this.maxTimer)
    this.queue.length = 0
    this.o.governor.close()
    closeSocket(this.o.client, close.client ?? [1000, 'closed'])
    closeSocket(this.o.upstream, close.upstream ?? [1000, 'closed'])
    const t = this.o.governor.totals
    this.o.logger.info({ reqId: this.o.id, model: this.o.model, reason, durationMs: this.o.now() - this.startedAt, responses: t.responses, promptTokens: t.promptTokens, completionTokens: t.completionTokens }, 'realtime session')
    this.o.onEnd(reason)
  }
}

/** Starts a closing handshake, and cuts the socket if the peer has not finished it soon after. */
function closeSocket(ws: WebSocket, [code, reason]: readonly [number, string]): void {
  if (ws.readyState === 3) return
  ws.resume()
  try {
    if (ws.readyState === 1) ws.close(code, reason)
  } catch {
    ws.terminate()
    return
  }
  const t = setTimeout(() => ws.terminate(), CLOSE_GRACE_MS)
  t.unref?.()
  ws.once('close', () => clearTimeout(t))
}

/** How the client hears that the upstream closed: its code when it may be relayed, 1011 for a lost connection. */
function upstreamClose(code: number, reason: Buffer): readonly [number, string] {
  if (!sendable(code)) return [code === 1005 ? 1000 : 1011, code === 1005 ? 'the backend closed the session' : 'the backend connection was lost']
  const text = reason.toString('utf8')
  // A close reason is at most 123 bytes; the backend's is cut, never relayed longer.
  return [code, Buffer.byteLength(text) <= 123 ? text : text.slice(0, 60)]
}

/** Tokens a conversation item adds: its texts at ~4 characters a token, audio at 10 tokens a second. */
function itemTokens(item: unknown): number {
  if (!item || typeof item !== 'object') return 0
  const content = (item as { content?: unknown }).content
  let n = 4
  if (typeof (item as { output?: unknown }).output === 'string') n += ((item as { output: string }).output.length) / 4
  if (typeof (item as { arguments?: unknown }).arguments === 'string') n += ((item as { arguments: string }).arguments.length) / 4
  if (!Array.isArray(content)) return n
  for (const part of content) {
    if (!part || typeof part !== 'object') continue
    const p = part as Record<string, unknown>
    if (typeof p.text === 'string') n += p.text.length / 4
    if (typeof p.transcript === 'string') n += p.transcript.length / 4
    if (typeof p.audio === 'string') n += audioTokens(p.audio.length)
    if (p.type === 'input_image') n += 85
  }
  return n
}

/**
 * Audio tokens in a base64 chunk: OpenAI counts user audio at 1 token per 100 ms; pcm16 at 24 kHz (the
 * default format) is 4,800 bytes per 100 ms. Other formats are estimated the same way; usage corrects it.
 */
function audioTokens(base64Length: number): number {
  return (base64Length * 3) / 4 / 4800
}
