import { once } from 'node:events'
import type { ServerResponse } from 'node:http'
import type { Readable } from 'node:stream'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { createRequestContext, type MediaOperation, type RequestContext } from '../core/context.ts'
import { GatewayError, GW_ERR, toGatewayError } from '../core/errors.ts'
import { runInbound, type CompiledPipeline, type JsonResult, type RawResult, type StreamResult } from '../core/pipeline.ts'
import type { Usage } from '../core/usage.ts'
import { clipText, UNKNOWN_MODEL } from '../core/bounded.ts'
import { modelAllowed } from '../config/snapshot.ts'
import { sendError, settle, type ProxyDeps } from '../server/proxy.ts'
import { ClientAbortError } from '../upstream/client.ts'
import { setCustomAttempt } from '../upstream/custom-attempt.ts'
import { mediaAttempt } from './exchange.ts'
import { StreamedUpload, type UploadLimits, type UploadSpec } from './upload.ts'
import { MediaMeter } from './usage.ts'

/** One media endpoint: its operation, and the form's file parts when it takes a multipart upload. */
export interface MediaEndpoint {
  readonly operation: MediaOperation
  readonly upload?: UploadSpec
}

export interface MediaDeps extends ProxyDeps {
  readonly limits: () => UploadLimits
}

/** How long a connection answered while its upload is still arriving stays open for the client to read the answer. */
const UNREAD_LINGER_MS = 1000

const invalid = (message: string, param: string | null = null) => new GatewayError(GW_ERR.INVALID_REQUEST, message, { param })

/**
 * The request path of the media endpoints: the same admission, product allow-list, policies (rate and
 * token limits, budgets), router (pools, breakers, failover) and ledger as chat, with a body that is
 * either small JSON or a multipart upload streamed through (upload.ts), and an answer relayed in its own
 * form: JSON verbatim, SSE frame by frame, audio and plain text chunk by chunk.
 */
export async function handleMedia(deps: MediaDeps, req: FastifyRequest, reply: FastifyReply, endpoint: MediaEndpoint, modelFromPath: string | null): Promise<void> {
  const admitted = req.sluice
  const rt = admitted?.runtime ?? deps.runtime()
  const controller = new AbortController()
  const raw = reply.raw
  const onClose = () => { if (!raw.writableFinished) controller.abort() }
  raw.once('close', onClose)
  deps.inflight.count++
  let ctx: RequestContext | null = null
  let pipeline: CompiledPipeline | null = null
  let upload: StreamedUpload | null = null
  let finished = false
  const finish = (status: number, usage: Usage | null, error: GatewayError | null) => {
    if (finished) return
    finished = true
    deps.inflight.count--
    if (ctx) settle(deps, ctx, pipeline, { status, usage, error, aborted: controller.signal.aborted, endedAt: deps.now(), completionText: null, servedBy: null })
  }
  try {
    let body: Record<string, unknown>
    if (endpoint.upload) {
      if (!isStream(req.body)) throw invalid('This endpoint takes a multipart/form-data body.')
      upload = new StreamedUpload(req.raw, endpoint.upload, deps.limits(), modelFromPath)
      // Never held whole: what the upload keeps in memory is bounded by `media.routingPrefixBytes`.
      admitted?.bodyDone()
      const u = upload
      raw.once('close', () => u.dispose())
      await upload.routable
      body = Object.fromEntries(upload.fields)
    } else {
      body = jsonBody(req.body, modelFromPath)
    }
    const requested = modelFromPath ?? (body.model as string)
    const known = rt.snapshot.models.has(requested)
    ctx = createRequestContext({
      id: req.id,
      startedAt: deps.now(),
      operation: endpoint.operation,
      info: { method: req.method, path: req.url, ip: req.ip, headers: req.headers },
      signal: controller.signal,
      model: known ? requested : UNKNOWN_MODEL,
      body,
      stream: body.stream === true || body.stream === 'true' || body.stream_format === 'sse',
      clientWantsStreamUsage: false,
    })
    if (upload) ctx.responseHeaders['x-sluice-upload'] = upload.delivery
    if (admitted) ctx.principal = admitted.principal
    else {
      const p = deps.auth.resolve(rt.snapshot, req.headers, req.ip)
      ctx.principal = p instanceof Promise ? await p : p
    }
    // Traced like the chat routes: a request span, and an attempt span per try (the router's custom attempts).
    deps.tracing?.begin(ctx, rt.snapshot, admitted ?? null, req.routeOptions.url ?? 'unknown', raw)
    if (!known) throw new GatewayError(GW_ERR.MODEL_NOT_FOUND, `The model "${clipText(requested)}" does not exist or you do not have access to it.`, { param: 'model' })
    if (!modelAllowed(rt.snapshot, ctx.principal.productId, ctx.model)) {
      throw new GatewayError(GW_ERR.MODEL_NOT_ALLOWED, `Your key may not use the model "${ctx.model}".`, { param: 'model' })
    }
    pipeline = rt.pipelineFor(ctx.principal.productId)
    setCustomAttempt(ctx, mediaAttempt(ctx, upload))
    const early = pipeline.inbound === null ? null : await runInbound(pipeline, ctx)
    const result = early ?? (await pipeline.dispatch(ctx))
    // The form is whole by the time a backend answers: fields after the file (`size`, `n`, `stream`…) are known now.
    const meter = new MediaMeter(endpoint.operation, upload ? Object.fromEntries(upload.fields) : body, ctx.model)
    if (upload) meter.uploadSeconds(upload.audioSeconds())
    const c = ctx
    if (result.kind === 'json') sendAnswer(c, reply, result, meter, (usage) => finish(result.status, usage, null))
    else if (result.kind === 'stream') await relaySse(deps.now, c, raw, result, meter, (usage, error) => finish(error ? error.status : 200, usage, error))
    else await relayRaw(deps.now, c, raw, result, meter, (usage, error) => finish(error ? error.status : result.status, usage, error))
  } catch (err) {
    // The upload's own failure (too large, cut, malformed) is the answer, whatever a backend said meanwhile.
    const cause = upload?.error ?? err
    if (!upload?.error && (err instanceof ClientAbortError || controller.signal.aborted)) {
      finish(499, null, null)
      if (!raw.headersSent && !raw.destroyed) raw.destroy()
      return
    }
    const gwErr = toGatewayError(cause)
    if (gwErr.code === GW_ERR.INTERNAL.code) deps.logger.error({ err, reqId: req.id }, 'unexpected error on a media request')
    ctx ??= refusedContext(req, endpoint, controller.signal, deps.now())
    if (admitted && ctx.principal === null) ctx.principal = admitted.principal
    finish(gwErr.status, null, gwErr)
    // A body still arriving (an upload refused midway, a form sent to a JSON route) is not drained: the connection closes.
    if (upload ? upload.unfinished : !req.raw.complete) closeAfterAnswer(req, reply)
    if (!reply.sent && !raw.headersSent && !raw.destroyed) sendError(reply, gwErr, ctx)
  } finally {
    raw.off('close', onClose)
  }
}

/** A request refused before its model was known (the upload failed): recorded without one. */
function refusedContext(req: FastifyRequest, endpoint: MediaEndpoint, signal: AbortSignal, now: number): RequestContext {
  return createRequestContext({
    id: req.id, startedAt: now, operation: endpoint.operation, signal, model: '', body: {}, stream: false, clientWantsStreamUsage: false,
    info: { method: req.method, path: req.url, ip: req.ip, headers: req.headers },
  })
}

/** The client is still sending: the answer goes out with `connection: close`, and the socket is closed shortly after. */
function closeAfterAnswer(req: FastifyRequest, reply: FastifyReply): void {
  if (!reply.raw.headersSent) void reply.header('connection', 'close')
  const socket = req.raw.socket
  reply.raw.once('finish', () => { setTimeout(() => socket.destroy(), UNREAD_LINGER_MS).unref() })
}

function isStream(v: unknown): v is Readable {
  return !!v && typeof (v as Readable).pipe === 'function' && typeof (v as Readable).on === 'function'
}

function jsonBody(body: unknown, modelFromPath: string | null): Record<string, unknown> {
  if (!body || typeof body !== 'object' || Array.isArray(body) || isStream(body)) throw invalid('The request body must be a JSON object.')
  const b = body as Record<string, unknown>
  if (modelFromPath === null && (typeof b.model !== 'string' || b.model === '')) throw invalid('You must provide a model parameter.', 'model')
  if (b.stream !== undefined && typeof b.stream !== 'boolean') throw invalid('"stream" must be a boolean.', 'stream')
  if (b.n !== undefined && (typeof b.n !== 'number' || !Number.isInteger(b.n) || b.n < 1 || b.n > 128)) throw invalid('"n" must be an integer from 1 to 128.', 'n')
  return b
}

function sluiceHeaders(ctx: RequestContext): Record<string, string> {
  const h: Record<string, string> = { ...ctx.responseHeaders, 'x-request-id': ctx.id }
  if (ctx.backendId !== null) {
    h['x-sluice-backend'] = ctx.backendId
    h['x-sluice-attempts'] = String(ctx.attempts)
  }
  return h
}

/** A JSON answer, forwarded as the backend wrote it; its usage handed to the ledger before the send. */
function sendAnswer(ctx: RequestContext, reply: FastifyReply, result: JsonResult, meter: MediaMeter, beforeSend: (usage: Usage) => void): void {
  meter.answer(result.body)
  const usage = meter.usage()
  ctx.usage = usage
  beforeSend(usage)
  void reply.code(result.status).headers({ ...result.headers, ...sluiceHeaders(ctx), 'content-type': 'application/json' }).send(result.text ?? JSON.stringify(result.body))
}

async function drained(res: ServerResponse, signal: AbortSignal): Promise<void> {
  if (signal.aborted || res.destroyed) throw new ClientAbortError()
  await once(res, 'drain', { signal }).catch(() => { throw new ClientAbortError() })
}

/** SSE (streamed images, transcripts, speech events): each frame forwarded as received, its usage events metered. */
async function relaySse(now: () => number, ctx: RequestContext, res: ServerResponse, result: StreamResult, meter: MediaMeter, beforeEnd: (usage: Usage, error: GatewayError | null) => void): Promise<void> {
  const onAbort = () => result.abort()
  ctx.signal.addEventListener('abort', onAbort, { once: true })
  // A form's `stream` field may come after its file, unread when the request was routed: the answer tells.
  ;(ctx as { stream: boolean }).stream = true
  let error: GatewayError | null = null
  res.writeHead(200, { ...result.headers, ...sluiceHeaders(ctx), 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' })
  res.flushHeaders()
  try {
    for await (const frame of result.frames) {
      if (ctx.firstTokenAt === null) ctx.firstTokenAt = now()
      if (frame.data.charCodeAt(0) === 123 /* { */) {
        try {
          const json = JSON.parse(frame.data) as Record<string, unknown>
          meter.event(json)
          if (json.type === 'error' || (frame.event === 'error' && json.error)) error = new GatewayError(GW_ERR.BAD_GATEWAY, 'The backend reported an error mid-stream.')
        } catch { /* not JSON: forwarded as it is */ }
      }
      if (!res.write(frame.raw)) await drained(res, ctx.signal)
    }
  } catch (err) {
    if (!(err instanceof ClientAbortError) && !ctx.signal.aborted) {
      error = toGatewayError(err)
      if (!res.destroyed) res.write(`event: error\ndata: ${JSON.stringify(error.toJSON())}\n\n`)
    }
  } finally {
    ctx.signal.removeEventListener('abort', onAbort)
    result.abort()
  }
  const usage = meter.usage()
  ctx.usage = usage
  try {
    beforeEnd(usage, error)
  } finally {
    if (!res.destroyed && !res.writableEnded) res.end()
  }
}

/** Bytes (speech audio, a plain-text or subtitle transcript) relayed chunk by chunk with the backend's content type. */
async function relayRaw(now: () => number, ctx: RequestContext, res: ServerResponse, result: RawResult, meter: MediaMeter, beforeEnd: (usage: Usage, error: GatewayError | null) => void): Promise<void> {
  const onAbort = () => result.abort()
  ctx.signal.addEventListener('abort', onAbort, { once: true })
  let error: GatewayError | null = null
  res.writeHead(result.status, { ...sluiceHeaders(ctx), 'content-type': result.headers['content-type'] ?? 'application/octet-stream', ...pick(result.headers, 'openai-processing-ms') })
  try {
    for await (const chunk of result.body) {
      if (ctx.firstTokenAt === null) ctx.firstTokenAt = now()
      if (!res.write(chunk)) await drained(res, ctx.signal)
    }
  } catch (err) {
    if (!(err instanceof ClientAbortError) && !ctx.signal.aborted) error = toGatewayError(err)
  } finally {
    ctx.signal.removeEventListener('abort', onAbort)
    result.abort()
  }
  const usage = meter.usage()
  ctx.usage = usage
  try {
    beforeEnd(usage, error)
  } finally {
    // A body cut upstream cannot be mended once its headers are out: the connection is closed, not ended cleanly.
    if (error && !res.destroyed) res.destroy()
    else if (!res.destroyed && !res.writableEnded) res.end()
  }
}

function pick(h: Record<string, string>, ...names: string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const n of names) if (h[n] !== undefined) out[n] = h[n]!
  return out
}
