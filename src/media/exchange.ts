import type { Dispatcher } from 'undici'
import type { RequestContext } from '../core/context.ts'
import { GatewayError, GW_ERR } from '../core/errors.ts'
import type { JsonResult, RawResult, StreamResult, UpstreamResult } from '../core/pipeline.ts'
import { SseParser, type SseFrame } from '../core/sse.ts'
import { ClientAbortError } from '../upstream/client.ts'
import type { AttemptTarget, CustomAttempt } from '../upstream/custom-attempt.ts'
import { failureFromError, UpstreamFailure } from '../upstream/failure.ts'
import { statusFailure } from '../upstream/router.ts'
import type { StreamedUpload } from './upload.ts'

/** Upstream response headers a media answer passes on (the content type of audio and transcripts among them). */
const FORWARDED = ['content-type', 'retry-after', 'retry-after-ms', 'openai-processing-ms', 'openai-model', 'x-ratelimit-reset-requests', 'x-ratelimit-reset-tokens']
/** Largest error body read from a backend (it is rebuilt, never relayed as it came). */
const MAX_ERROR_BYTES = 64 * 1024

/** A failure after the upload's first byte went upstream: recorded by the breaker, but not tried elsewhere (the body is gone). */
class SpentUploadFailure extends UpstreamFailure {
  override get retriable(): boolean {
    return false
  }
}

function spent(f: UpstreamFailure): UpstreamFailure {
  return new SpentUploadFailure({ status: f.status, type: f.type, code: f.code }, f.message, f.kind, f.backendId, f.upstreamStatus, f.retryAfterMs)
}

/**
 * One try of a media request at one member, through the router (src/upstream/custom-attempt.ts): a JSON
 * body with the model replaced, or the streamed upload; the answer comes back as JSON (parsed, its text
 * kept to forward verbatim), as SSE frames (streamed images, transcripts and speech) or as raw bytes
 * (audio, plain-text transcripts), never buffered beyond a JSON answer.
 */
export function mediaAttempt(ctx: RequestContext, upload: StreamedUpload | null): CustomAttempt {
  return async (t: AttemptTarget, signal: AbortSignal) => {
    if (signal.aborted) throw new ClientAbortError()
    const endTurn = upload ? await upload.turnFor(signal) : null
    try {
      return await attemptOnce(ctx, upload, t, signal)
    } finally {
      endTurn?.()
    }
  }
}

async function attemptOnce(ctx: RequestContext, upload: StreamedUpload | null, t: AttemptTarget, signal: AbortSignal): Promise<{ result: UpstreamResult; text: string }> {
  const { backend, target } = t
  if (signal.aborted) throw new ClientAbortError()
  let body: string | AsyncIterable<Buffer>
  const headers: Record<string, string> = { ...target.headers }
  if (upload) {
    if (upload.spent) throw new GatewayError(GW_ERR.BAD_GATEWAY, 'The upload was already sent to a backend and cannot be sent again.')
    // The Azure deployment path carries the deployment: the form's `model` is then left as the client sent it.
    const rewrite = backend.type === 'azure-openai' && !target.path.includes('/openai/v1/') ? null : t.upstreamModel
    const claimed = upload.claim(rewrite)
    body = claimed.body
    headers['content-type'] = upload.contentType
    if (claimed.length !== null) headers['content-length'] = String(claimed.length)
  } else {
    body = JSON.stringify({ ...ctx.body, model: t.upstreamModel })
    headers['content-type'] = 'application/json'
  }
  if (t.credentials) {
    try {
      Object.assign(headers, await t.credentials.headers({ method: 'POST', url: target.origin + target.path, headers, body: typeof body === 'string' ? body : '' }, signal))
    } catch (err) {
      if (signal.aborted) throw new ClientAbortError()
      throw new UpstreamFailure(GW_ERR.BAD_GATEWAY, err instanceof GatewayError ? err.message : `Backend "${backend.id}" has no usable credentials.`, 'connect', backend.id)
    }
  }
  let res: Dispatcher.ResponseData
  try {
    res = await requestOnce(t, headers, body, signal, upload)
  } catch (err) {
    if (upload?.error) throw upload.error // the client's upload failed: its error, and no breaker failure
    if (err instanceof UpstreamFailure && upload?.spent) throw spent(err)
    throw err
  }
  const out: Record<string, string> = {}
  for (const name of FORWARDED) {
    const v = res.headers[name]
    if (typeof v === 'string') out[name] = v
  }
  const contentType = out['content-type'] ?? ''
  if (res.statusCode >= 400) {
    const text = await boundedText(res.body, MAX_ERROR_BYTES).catch(() => '')
    let parsed: Record<string, unknown>
    try {
      const v: unknown = JSON.parse(text)
      parsed = v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {}
    } catch {
      parsed = {}
    }
    if (!parsed.error) parsed = { error: { message: `Backend "${backend.id}" answered ${res.statusCode}.`, type: 'api_error', param: null, code: null } }
    delete out['content-type']
    const failure = statusFailure(backend.id, res.statusCode, out, parsed)
    throw failure instanceof UpstreamFailure && upload?.spent ? spent(failure) : failure
  }
  if (contentType.includes('text/event-stream')) return { result: sseResult(res, out, signal, backend.id), text: '' }
  if (contentType.includes('application/json')) {
    let text: string
    try {
      text = await res.body.text()
    } catch (err) {
      throw signal.aborted ? new ClientAbortError() : failureFromError(err, backend.id)
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      parsed = null
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new UpstreamFailure(GW_ERR.BAD_GATEWAY, `Backend "${backend.id}" sent a response that is not JSON.`, 'status', backend.id, res.statusCode)
    }
    const result: JsonResult = { kind: 'json', status: res.statusCode, headers: out, body: parsed as Record<string, unknown>, text }
    return { result, text: '' }
  }
  return { result: rawResult(res, out, signal, backend.id), text: '' }
}

/**
 * The request, with the backend's `timeout` for its answer's headers: counted from when the body has
 * been sent whole (an upload takes as long as the client takes), the wait for a pooled connection included.
 */
async function requestOnce(t: AttemptTarget, headers: Record<string, string>, body: string | AsyncIterable<Buffer>, signal: AbortSignal, upload: StreamedUpload | null): Promise<Dispatcher.ResponseData> {
  const { backend, target, pool } = t
  const attempt = new AbortController()
  // undici sends an async iterable body as it is pulled (its types list only streams): the pull is what marks an upload spent.
  const pending: Promise<Dispatcher.ResponseData> = pool.request({ method: 'POST', path: target.path, headers, body: body as string, signal: attempt.signal, headersTimeout: 0, bodyTimeout: backend.idleTimeout })
  let timer: NodeJS.Timeout | undefined
  let onAbort: (() => void) | undefined
  try {
    return await new Promise<Dispatcher.ResponseData>((resolve, reject) => {
      let settled = false
      const fail = (err: Error) => { if (!settled) { settled = true; attempt.abort(); reject(err) } }
      const arm = () => {
        if (settled) return
        timer = setTimeout(() => fail(new UpstreamFailure(GW_ERR.GATEWAY_TIMEOUT, `Backend "${backend.id}" did not answer within ${backend.timeout} ms.`, 'timeout', backend.id)), backend.timeout)
      }
      if (upload) upload.complete.then(arm, () => {})
      else arm()
      onAbort = () => fail(new ClientAbortError())
      signal.addEventListener('abort', onAbort, { once: true })
      pending.then(
        (r) => { if (settled) r.body.destroy(); else { settled = true; resolve(r) } },
        (err: unknown) => fail(signal.aborted ? new ClientAbortError() : failureFromError(err, backend.id)),
      )
    })
  } finally {
    clearTimeout(timer)
    if (onAbort) signal.removeEventListener('abort', onAbort)
  }
}

async function boundedText(body: Dispatcher.ResponseData['body'], max: number): Promise<string> {
  const parts: Buffer[] = []
  let n = 0
  for await (const c of body) {
    const b = c as Buffer
    if (n + b.length > max) { parts.push(b.subarray(0, max - n)); body.destroy(); break }
    parts.push(b)
    n += b.length
  }
  return Buffer.concat(parts).toString('utf8')
}

function sseResult(res: Dispatcher.ResponseData, headers: Record<string, string>, signal: AbortSignal, backendId: string): StreamResult {
  const body = res.body
  let ended = false
  const abort = () => { if (!ended) { ended = true; body.destroy() } }
  async function* frames(): AsyncGenerator<SseFrame> {
    const parser = new SseParser()
    try {
      for await (const chunk of body) for (const f of parser.push(chunk as Buffer)) yield f
      for (const f of parser.end()) yield f
    } catch (err) {
      if (signal.aborted || ended) throw new ClientAbortError()
      throw failureFromError(err, backendId)
    } finally {
      ended = true
    }
  }
  return { kind: 'stream', status: res.statusCode, headers, frames: frames(), abort }
}

function rawResult(res: Dispatcher.ResponseData, headers: Record<string, string>, signal: AbortSignal, backendId: string): RawResult {
  const body = res.body
  let ended = false
  const abort = () => { if (!ended) { ended = true; body.destroy() } }
  async function* chunks(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of body) yield chunk as Buffer
    } catch (err) {
      if (signal.aborted || ended) throw new ClientAbortError()
      throw failureFromError(err, backendId)
    } finally {
      ended = true
    }
  }
  return { kind: 'raw', status: res.statusCode, headers, body: chunks(), abort }
}

export type { UpstreamResult }
