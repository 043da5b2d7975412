import { once } from 'node:events'
import type { ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { createRequestContext, type Operation, type RequestContext } from '../core/context.ts'
import { GatewayError, GW_ERR, toGatewayError } from '../core/errors.ts'
import { runInbound, type CompiledPipeline, type JsonResult, type Outcome, type StreamChunk, type StreamResult } from '../core/pipeline.ts'

import { addUsage, usageFromOpenAI, type Usage } from '../core/usage.ts'
import { modelAllowed } from '../config/snapshot.ts'
import { countPromptTokens, countTextTokensAsync } from '../tokens/count.ts'
import { ClientAbortError } from '../upstream/client.ts'
import { attemptsOf } from '../upstream/attempts.ts'
import type { Runtime } from './runtime.ts'
import type { RequestRecorder } from '../telemetry/telemetry.ts'
import { traceOf, type RequestTracing } from '../telemetry/tracing.ts'
import type { LedgerSink } from '../ledger/ledger.ts'
import type { Authenticator } from './auth.ts'
import { isUsageOnlyChunk, mayCarryUsageOrError, StreamAccounting } from './stream-usage.ts'
import { clipText, UNKNOWN_MODEL } from '../core/bounded.ts'
import { openaiDoor } from './front-doors/openai.ts'
import { WriteBatch } from './write-batch.ts'
import { RequestAbort } from '../core/request-abort.ts'
import type { FrontDoor } from './front-doors/types.ts'

export interface ProxyDeps {
  readonly runtime: () => Runtime
  readonly auth: Authenticator
  readonly logger: Logger
  readonly now: () => number
  readonly inflight: { count: number }
  /** Request-level metrics, recorded in `settle` after the response. */
  readonly telemetry?: RequestRecorder
  /** The usage ledger: one record per request, handed over synchronously in `settle` (never awaited). */
  readonly ledger?: LedgerSink
  /** Request traces (OTLP spans) and debug timings; a request neither applies to costs a header lookup. */
  readonly tracing?: RequestTracing | null
}

/**
 * The request path for every operation and every front door: parse the client's body into the hub schema (the
 * door), authenticate, route the model, run inbound policies, dispatch through the backend chain, relay the
 * answer in the door's shape (streams frame by frame), then hand the outcome to `complete` hooks off the
 * client's path.
 */
export async function proxyRequest(deps: ProxyDeps, req: FastifyRequest, reply: FastifyReply, operation: Operation, modelFromPath: string | null, door: FrontDoor = openaiDoor): Promise<void> {
  // Authenticated from the headers before the body was read (front-door.ts); the runtime it was checked
  // against is the one snapshot for the whole request, even if a reload lands meanwhile.
  const admitted = req.sluice
  const rt = admitted?.runtime ?? deps.runtime()
  const cancel = new RequestAbort()
  const raw = reply.raw
  const onClose = () => { if (!raw.writableFinished) cancel.abort() }
  raw.once('close', onClose)
  deps.inflight.count++
  let ctx: RequestContext | null = null
  let pipeline: CompiledPipeline | null = null
  let finished = false
  const finish = (status: number, usage: Usage | null, error: GatewayError | null, completionText: string | null, servedBy: string | null) => {
    if (finished) return
    finished = true
    deps.inflight.count--
    if (ctx) settle(deps, ctx, pipeline, { status, usage, error, aborted: cancel.aborted, endedAt: deps.now(), completionText, servedBy }, true)
  }
  try {
    const headers = req.headers
    const parsed = door.parse(operation, req.body, modelFromPath, headers, rt.snapshot.config.requestLimits)
    const requested = parsed.model
    const known = rt.snapshot.models.has(requested)
    ctx = createRequestContext({
      id: req.id,
      startedAt: deps.now(),
      operation,
      info: { method: req.method, path: req.url, ip: req.ip, headers },
      signal: cancel,
      // A name nobody configured is the client's free text: it is never recorded, logged or labelled.
      model: known ? requested : UNKNOWN_MODEL,
      body: parsed.body,
      stream: parsed.stream,
      clientWantsStreamUsage: parsed.clientWantsStreamUsage,
      client: parsed.client,
    })
    if (admitted) ctx.principal = admitted.principal
    else {
      const principal = deps.auth.resolve(rt.snapshot, headers, req.ip)
      ctx.principal = principal instanceof Promise ? await principal : principal
    }
    deps.tracing?.begin(ctx, rt.snapshot, admitted, req.routeOptions.url ?? 'unknown', raw)
    if (!known) {
      throw new GatewayError(GW_ERR.MODEL_NOT_FOUND, `The model "${clipText(requested)}" does not exist or you do not have access to it.`, { param: 'model' })
    }
    if (!modelAllowed(rt.snapshot, ctx.principal.productId, ctx.model)) {
      throw new GatewayError(GW_ERR.MODEL_NOT_ALLOWED, `Your key may not use the model "${ctx.model}".`, { param: 'model' })
    }
    pipeline = rt.pipelineFor(ctx.principal.productId)
    const early = pipeline.inbound === null ? null : await runInbound(pipeline, ctx)
    traceOf(ctx)?.inbound()
    const result = early ?? (await pipeline.dispatch(ctx))
    const servedBy = ctx.backendId === null ? (result.headers['x-sluice-served-by'] ?? null) : null
    // The ledger record reaches the crash journal before the client can see the answer (issue 18): finish()
    // hands it over just before the send (or the end of the stream), and the send waits for the journal's
    // write of this turn (`journaled`); the rest of settle is deferred.
    const c = ctx
    if (result.kind === 'json') {
      const held = sendJson(deps, c, pipeline, reply, result, door, (text) => finish(result.status, c.usage, null, text, servedBy))
      if (held) await held
    } else if (result.kind === 'stream') {
      await relayStream(deps, c, pipeline, raw, result, door, rt.snapshot.config.requestLimits.maxStreamDuration, (usage, error, text) => finish(error ? error.status : 200, usage, error, text, servedBy))
    } else {
      result.abort() // raw bodies are the media routes' own (src/media/); the text routes never get one
      throw new GatewayError(GW_ERR.INTERNAL, 'The backend answered in a form this endpoint does not relay.')
    }
  } catch (err) {
    if (err instanceof ClientAbortError || cancel.aborted) {
      finish(499, null, null, null, null)
      if (!raw.headersSent && !raw.destroyed) raw.destroy()
      return
    }
    const gwErr = toGatewayError(err)
    if (gwErr.code === GW_ERR.INTERNAL.code) deps.logger.error({ err, reqId: req.id }, 'unexpected error on the request path')
    finish(gwErr.status, null, gwErr, null, null) // before the send, as above
    const held = journaled(deps)
    if (held) await held
    if (!reply.sent && !raw.headersSent) sendError(reply, gwErr, ctx, door)
  } finally {
    raw.off('close', onClose)
  }
}

/** Adds the gateway's own response headers to `h` (over what is there) and returns it: one object per answer, not a copy per step. */
function commonHeaders(ctx: RequestContext, h: Record<string, string> = {}): Record<string, string> {
  Object.assign(h, ctx.responseHeaders)
  if (ctx.backendId !== null) {
    h['x-sluice-backend'] = ctx.backendId
    h['x-sluice-attempts'] = String(ctx.attempts)
  }
  traceOf(ctx)?.responseHeaders(h)
  return h
}

/**
 * The answer's record reaches the crash journal before the client can see the answer: a record handed over
 * with `settle(…, true)` is written with the others of this turn, and the answer waits for that write (null:
 * nothing to wait for, send now).
 */
function journaled(deps: ProxyDeps): Promise<void> | null {
  return deps.ledger?.journaled?.() ?? null
}

/** Sends a JSON answer; a promise when it waits for the journal (the handler must not return before the send). */
function sendJson(deps: ProxyDeps, ctx: RequestContext, pipeline: CompiledPipeline, reply: FastifyReply, result: JsonResult, door: FrontDoor, beforeSend: (completionText: string | null) => void): Promise<void> | null {
  if (pipeline.outboundResponse) for (const fn of pipeline.outboundResponse) fn(ctx, result)
  ctx.usage = usageFromOpenAI(result.body.usage)
  const payload = door.json(result, ctx.id)
  beforeSend(completionTextOf(result.body))
  const headers = commonHeaders(ctx, { ...result.headers })
  headers['content-type'] = 'application/json'
  const send = () => { void reply.code(result.status).headers(door.headers(headers, ctx.id)).send(payload) }
  const held = journaled(deps)
  if (held === null) { send(); return null }
  return held.then(send)
}

const asText = (out: string | Uint8Array): string => (typeof out === 'string' ? out : Buffer.from(out.buffer, out.byteOffset, out.byteLength).toString('utf8'))

function completionTextOf(body: Record<string, unknown>): string | null {
  const choices = body.choices
  if (Array.isArray(choices) && choices.length) {
    const c = choices[0] as { message?: { content?: unknown }; text?: unknown }
    const t = c.message?.content ?? c.text
    return typeof t === 'string' ? t : null
  }
  if (typeof body.output_text === 'string') return body.output_text
  return null
}

/**
 * Relays a stream in the door's shape; `beforeEnd` gets the final usage before the client sees the stream's end
 * (the `[DONE]` frame and the door's closing events are held until then).
 */
async function relayStream(deps: ProxyDeps, ctx: RequestContext, pipeline: CompiledPipeline, res: ServerResponse, result: StreamResult, door: FrontDoor,
  maxDurationMs: number | undefined, beforeEnd: (usage: Usage, error: GatewayError | null, text: string | null) => void): Promise<void> {
  const acct = new StreamAccounting(ctx.operation)
  const trace = traceOf(ctx)
  const writer = door.streamWriter(ctx.operation, ctx.model, ctx.id)
  // Chat deltas go on unparsed once the first content is seen, when nothing reads them on the way: no policy
  // edits chunks, no trace records them, and the door forwards an unchanged frame's bytes. Events that may
  // carry usage or an error are still parsed; the others' text is taken only if it is needed.
  const lazy = pipeline.outboundChunk === null && trace === undefined && writer.forwardsUnchanged === true &&
    (ctx.operation === 'chat.completions' || ctx.operation === 'completions')
  const onAbort = () => result.abort()
  ctx.cancel.addEventListener('abort', onAbort, { once: true })
  let error: GatewayError | null = null
  // `requestLimits.maxStreamDuration`: past it the upstream is stopped and the stream ends with an error event.
  let overtime: NodeJS.Timeout | undefined
  let timedOut = false
  if (maxDurationMs !== undefined) {
    overtime = setTimeout(() => { timedOut = true; result.abort() }, Math.max(0, maxDurationMs - (deps.now() - ctx.startedAt)))
  }
  const headers = commonHeaders(ctx, { ...result.headers })
  headers['content-type'] = 'text/event-stream; charset=utf-8'
  headers['cache-control'] = 'no-cache'
  headers['x-request-id'] = ctx.id
  if (trace) Object.assign(headers, trace.streamHeaders())
  res.writeHead(200, door.headers(headers, ctx.id))
  // Frames that arrive in one turn leave in one write at its end (the headers with the first), instead of
  // one write per frame; nothing is held past the turn it arrived in.
  const batch = new WriteBatch(res)
  let scheduled = false
  const flushTurn = () => {
    scheduled = false
    batch.flush()
    if (!batch.wroteAny && !res.headersSent && !res.destroyed) res.flushHeaders()
  }
  let done: string | null = null
  try {
    for await (const frame of result.frames) {
      if (res.writableNeedDrain) await drained(res, ctx)
      if (!scheduled) { scheduled = true; process.nextTick(flushTurn) }
      if (done !== null) { batch.add(done); done = null } // a frame after [DONE]: keep the order
      if (frame.data === '[DONE]') { done = asText(writer.frame(frame, null, false)); continue }
      let json: Record<string, unknown> | null = frame.json ?? null
      if (json === null && frame.data.charCodeAt(0) === 123 /* { */) {
        if (lazy && ctx.firstTokenAt !== null && !mayCarryUsageOrError(frame.data)) {
          acct.defer(frame.data)
          batch.add(writer.frame(frame, null, false))
          continue
        }
        try { json = JSON.parse(frame.data) as Record<string, unknown> } catch { json = null }
      }
      if (json !== null) {
        if (acct.observe(json) && ctx.firstTokenAt === null) ctx.firstTokenAt = deps.now()
        trace?.chunk(json)
        if (json.error && typeof json.error === 'object' && !json.choices) {
          error = new GatewayError(GW_ERR.BAD_GATEWAY, 'The backend reported an error mid-stream.')
        }
        // The usage chunk we asked for on the client's behalf is ours, not theirs.
        if (!ctx.clientWantsStreamUsage && isUsageOnlyChunk(json)) continue
      }
      let modified = false
      if (pipeline.outboundChunk) {
        const chunk: StreamChunk = { frame, json, modified: false }
        let keep = true
        for (const fn of pipeline.outboundChunk) if (!(keep = fn(ctx, chunk))) break
        if (!keep) continue
        modified = chunk.modified
        json = chunk.json
      }
      batch.add(writer.frame(frame, json, modified))
    }
    const tail = writer.end()
    if (tail !== '') done = (done ?? '') + tail
  } catch (err) {
    if (!(err instanceof ClientAbortError) && !ctx.cancel.aborted) {
      // Headers are gone: the only honest thing left is an explicit error event, then the end of the stream.
      error = timedOut ? streamOvertime(maxDurationMs!) : toGatewayError(err)
      done = null
      batch.add(writer.error(error))
    }
  } finally {
    clearTimeout(overtime)
    ctx.cancel.removeEventListener('abort', onAbort)
    result.abort()
  }
  // What the last turn queued goes out now, in order, before anything written below: corked, so that when
  // the stream's end follows in this turn (the common case: the backend's last read carries its last frames
  // and its end), those frames, `[DONE]` and the chunked terminator leave in one `writev` instead of one for
  // the frames and one for the end. `res.end()` uncorks fully; a wait that may be long uncorks first.
  const corked = !res.destroyed && !res.writableEnded
  if (corked) res.cork()
  batch.flush()
  if (timedOut && error === null && !ctx.cancel.aborted) {
    // The upstream ended quietly when it was stopped: still say why the answer is cut.
    error = streamOvertime(maxDurationMs!)
    done = null
    if (!res.destroyed && !res.writableEnded) res.write(writer.error(error))
  }
  try {
    let usage = acct.usage
    if (usage === null || ctx.cancel.aborted || error) {
      // No usage from the backend, or the stream was cut: count what was really generated. Counting a long
      // answer may take a while: what is corked goes out first.
      if (corked) res.uncork()
      const completion = await countTextTokensAsync(acct.generatedText, ctx.model)
      const prompt = usage?.promptTokens || (await countPromptTokens(ctx.operation, ctx.body, ctx.model))
      usage = usage && usage.completionTokens >= completion ? usage : { promptTokens: prompt, completionTokens: completion, totalTokens: prompt + completion, cachedTokens: usage?.cachedTokens ?? 0, reasoningTokens: usage?.reasoningTokens ?? 0 }
    }
    ctx.usage = usage
    // The text is assembled only for a policy that reads it (a getter on the outcome instead cost ~15 % CPU
    // per stream: every reader of the outcome went polymorphic).
    beforeEnd(usage, error, pipeline.readsCompletionText ? acct.generatedText : null)
  } finally {
    // The stream ends whatever happened above: a client is never left waiting on an open response; its end
    // waits for the record's journal write (beforeEnd handed it over).
    const held = journaled(deps)
    if (held) await held
    if (!res.destroyed && !res.writableEnded) {
      if (done !== null) res.write(done)
      const timings = trace?.trailer()
      if (timings) res.addTrailers({ 'server-timing': timings })
      res.end()
    }
  }
}

function streamOvertime(ms: number): GatewayError {
  return new GatewayError(GW_ERR.STREAM_DURATION_EXCEEDED, `The stream was ended after ${ms} ms, the longest a stream may last here.`)
}

async function drained(res: ServerResponse, ctx: RequestContext): Promise<void> {
  if (ctx.cancel.aborted || res.destroyed) throw new ClientAbortError()
  await once(res, 'drain', { signal: ctx.signal }).catch(() => { throw new ClientAbortError() })
}

/** How long a connection refused before its body was read stays open for the client to read the answer. */
const REFUSED_LINGER_MS = 1000

/**
 * Answers a request refused before its body was read (no key, over its concurrency, body budget spent) and
 * records it like any other: the ledger row has no model (the body was never read) and no metrics series is
 * made for it. The connection is closed after the answer, so the unread upload is not drained.
 */
export function refuseBeforeBody(deps: ProxyDeps, req: FastifyRequest, reply: FastifyReply, operation: Operation, err: GatewayError, door: FrontDoor = openaiDoor): void {
  const ctx = createRequestContext({
    id: req.id,
    startedAt: deps.now(),
    operation,
    info: { method: req.method, path: req.url, ip: req.ip, headers: req.headers },
    signal: new RequestAbort(),
    model: '',
    body: {},
    stream: false,
    clientWantsStreamUsage: false,
  })
  void reply.header('connection', 'close')
  // Node would go on reading (and discarding) the unread upload until the request timeout: once the answer
  // is out, the connection gets a short linger for the client to read it, then it is closed.
  const socket = req.raw.socket
  reply.raw.once('finish', () => { setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref() })
  sendError(reply, err, null, door)
  settle(deps, ctx, null, { status: err.status, usage: null, error: err, aborted: false, endedAt: deps.now(), completionText: null, servedBy: null })
}

export function sendError(reply: FastifyReply, err: GatewayError, ctx: RequestContext | null, door: FrontDoor = openaiDoor): void {
  const headers: Record<string, string> = { ...(ctx ? commonHeaders(ctx) : {}), ...err.headers, 'content-type': 'application/json' }
  void reply.code(err.status).headers(door.headers(headers, reply.request.id)).send(JSON.stringify(door.errorBody(err)))
}

/**
 * Runs `complete` hooks and writes the access log, after the response, never delaying it. `grouped`: the
 * caller sends its answer only once `deps.ledger.journaled()` resolves, so the record's journal write may join
 * this turn's others (without it the record is journalled here, synchronously).
 */
export function settle(deps: ProxyDeps, ctx: RequestContext, pipeline: CompiledPipeline | null, answered: Outcome, grouped = false): void {
  if (answered.usage) ctx.usage = answered.usage
  const extra = cancelledTriesUsage(ctx)
  const outcome: Outcome = extra === null ? answered : { ...answered, extraUsage: extra }
  // Queued before anything else, so a response the client has seen always has its record before shutdown drains the queue.
  try { deps.ledger?.record(ctx, outcome, grouped) } catch (err) { deps.logger.warn({ err, reqId: ctx.id }, 'ledger record failed') }
  const hooks = pipeline?.complete
  setImmediate(() => {
    traceOf(ctx)?.settle(outcome)
    try { deps.telemetry?.recordRequest(ctx, outcome) } catch (err) { deps.logger.warn({ err, reqId: ctx.id }, 'recording metrics failed') }
    if (hooks) {
      for (const fn of hooks) {
        try {
          const r = fn(ctx, outcome)
          if (r && typeof (r as Promise<void>).catch === 'function') (r as Promise<void>).catch((err) => deps.logger.warn({ err, reqId: ctx.id }, 'a complete hook failed'))
        } catch (err) {
          deps.logger.warn({ err, reqId: ctx.id }, 'a complete hook failed')
        }
      }
    }
    deps.logger.info({
      reqId: ctx.id,
      consumer: ctx.principal?.consumerId ?? null,
      model: ctx.model,
      backend: ctx.backendId,
      status: outcome.status,
      stream: ctx.stream,
      attempts: ctx.attempts,
      latencyMs: outcome.endedAt - ctx.startedAt,
      ttftMs: ctx.firstTokenAt === null ? null : ctx.firstTokenAt - ctx.startedAt,
      promptTokens: outcome.usage?.promptTokens ?? null,
      completionTokens: outcome.usage?.completionTokens ?? null,
      error: outcome.error?.code ?? null,
      aborted: outcome.aborted || undefined,
    }, 'request')
  })
}

/** What cancelled tries (hedges that lost the race) cost: their estimated prompt plus what they produced. */
function cancelledTriesUsage(ctx: RequestContext): Usage | null {
  let total: Usage | null = null
  for (const a of attemptsOf(ctx)) {
    if (a.outcome !== 'cancelled' || (a.promptTokens === null && a.completionTokens === null)) continue
    const prompt = a.promptTokens ?? 0
    const completion = a.completionTokens ?? 0
    total = addUsage(total, { promptTokens: prompt, completionTokens: completion, totalTokens: prompt + completion, cachedTokens: 0, reasoningTokens: 0 })
  }
  return total
}
