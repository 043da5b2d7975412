import { once } from 'node:events'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { BackendConfig, GatewayConfig } from '../config/schema.ts'
import type { Snapshot } from '../config/snapshot.ts'
import { clipText, UNKNOWN_MODEL } from '../core/bounded.ts'
import { GatewayError, GW_ERR, toGatewayError } from '../core/errors.ts'
import type { Ledger } from '../ledger/ledger.ts'
import { batchCost, batchPriceOf } from '../pricing/batch-prices.ts'
import { normaliseModel } from '../pricing/table.ts'
import { admissionHook } from '../server/front-door.ts'
import type { Authenticator } from '../server/auth.ts'
import { parseJsonBody, type BodyBudget } from '../server/body-guard.ts'
import type { InflightLimits } from '../server/inflight-limits.ts'
import { refuseBeforeBody, sendError, type ProxyDeps } from '../server/proxy.ts'
import type { Runtime } from '../server/runtime.ts'
import { ClientAbortError, type UpstreamClients } from '../upstream/client.ts'
import { UpstreamFailure } from '../upstream/failure.ts'
import { PassThroughError, type BaseUrlOf } from '../upstream/router.ts'
import { admitCall, startCall, type RelayedCall } from '../passthrough/call.ts'
import {
  backendBase, backendCredentialHeaders, BodyCutError, BodyTooLargeError, callBackend, discard, enterCircuit, leaveCircuit, limitedBody, readWhole,
} from '../passthrough/upstream.ts'
import { BatchUsageTap } from './batch-usage.ts'
import { createOwnershipStore, type OwnedKind, type OwnershipStore } from './ownership.ts'

type LedgerConfig = GatewayConfig['ledger']
type Json = Record<string, unknown>

export interface FilesDeps {
  readonly proxy: ProxyDeps
  readonly runtime: () => Runtime
  readonly auth: Authenticator
  readonly budget: BodyBudget
  readonly inflight: InflightLimits
  readonly clients: UpstreamClients
  readonly baseUrlOf: BaseUrlOf
  /** Where owners are kept: beside the ledger (SQLite file or PostgreSQL), in memory without one. */
  readonly ledgerConfig: LedgerConfig
  readonly ledger: Ledger | null
}

/** Largest JSON answer (a file or batch object, a list) read from the backend. */
const MAX_JSON_ANSWER = 32 * 1024 * 1024
/** Backend ids are identifiers (`file-…`, `batch_…`, Azure's `file-…`/`batch_…` GUID forms). */
const OBJECT_ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/
const REFUSED_LINGER_MS = 1000

/**
 * OpenAI's Files and Batch APIs through the gateway (`/v1/…`, Azure's `/openai/…` and `/openai/v1/…`),
 * proxied to the backend the `files:` section names for the caller's product. The backend keeps every
 * consumer's objects under the gateway's one credential, so the gateway keeps who created what (OwnershipStore)
 * and answers 404 for an id the caller does not own, exactly as for an id that does not exist; lists show
 * only the caller's own. Uploads stream to the backend as they arrive, counted against `maxUploadBytes`.
 * A batch's output file, once fetched whole, records the batch's usage in the ledger at the batch price, once.
 */
export function registerFiles(app: FastifyInstance, deps: FilesDeps): void {
  let owners: Promise<OwnershipStore> | null = null
  const ownership = () => (owners ??= createOwnershipStore(deps.ledgerConfig))
  app.addHook('onClose', async () => { if (owners) await (await owners).close().catch(() => {}) })
  void app.register(async (scope) => {
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined))
    const onRequest = admissionHook({
      runtime: deps.runtime, auth: deps.auth, budget: deps.budget, inflight: deps.inflight, bodyLimit: 0,
      refuse: (req, reply, err) => refuseBeforeBody(deps.proxy, req, reply, 'chat.completions', err),
    })
    const h = (fn: Handler) => ({ onRequest, handler: (req: FastifyRequest, reply: FastifyReply) => run(deps, ownership, req, reply, fn) })
    for (const root of ['/v1', '/openai', '/openai/v1']) {
      scope.post(`${root}/files`, h(upload))
      scope.get(`${root}/files`, h(listFiles))
      scope.get(`${root}/files/:id`, h(retrieve('file')))
      scope.delete(`${root}/files/:id`, h(deleteFile))
      scope.get(`${root}/files/:id/content`, h(content))
      scope.post(`${root}/batches`, h(createBatch))
      scope.get(`${root}/batches`, h(listBatches))
      scope.get(`${root}/batches/:id`, h(retrieve('batch')))
      scope.post(`${root}/batches/:id/cancel`, h(cancelBatch))
    }
  })
}

/** What one handler gets: the call, its backend, and a way to talk to it. */
interface Op {
  readonly deps: FilesDeps
  readonly rt: Runtime
  readonly req: FastifyRequest
  readonly reply: FastifyReply
  readonly call: RelayedCall
  readonly backend: BackendConfig
  readonly owners: OwnershipStore
  readonly consumer: string
  readonly trial: boolean
  readonly maxUploadBytes: number
  readonly maxJsonBytes: number
  /** One request to the backend's Files/Batch API at `sub` (`files`, `batches/{id}/cancel`…). */
  send(method: string, sub: string, opts?: { query?: URLSearchParams; headers?: Record<string, string>; body?: Buffer | ReturnType<typeof limitedBody> | null }): Promise<Upstream>
}
type Upstream = Awaited<ReturnType<typeof callBackend>>
type Handler = (op: Op) => Promise<void>

async function run(deps: FilesDeps, ownership: () => Promise<OwnershipStore>, req: FastifyRequest, reply: FastifyReply, fn: Handler): Promise<void> {
  const rt = req.sluice?.runtime ?? deps.runtime()
  const files = rt.snapshot.config.files
  const principal = req.sluice?.principal
  const backendId = files ? (principal?.productId ? files.products[principal.productId] : undefined) ?? files.backend : undefined
  const backend = backendId === undefined ? undefined : rt.snapshot.backends.get(backendId)
  if (!files || !backend || !principal) {
    return refuseBeforeBody(deps.proxy, req, reply, 'chat.completions', new GatewayError(GW_ERR.NOT_FOUND, 'Files and batches are not configured on this gateway (see the `files:` section).'))
  }
  const call = startCall(deps.proxy, req, reply, '', false)
  call.ctx.backendId = backend.id
  let trial = false
  let called = false
  try {
    await admitCall(rt, call.ctx)
    trial = await enterCircuit(rt.router.breakers, backend.id)
    const owners = await ownership()
    const baseUrl = deps.baseUrlOf(backend)
    const op: Op = {
      deps, rt, req, reply, call, backend, owners, consumer: principal.consumerId, trial,
      maxUploadBytes: files.maxUploadBytes, maxJsonBytes: files.maxJsonBytes,
      async send(method, sub, o = {}) {
        const target = filesTarget(backend, baseUrl, sub, o.query)
        const headers = await backendCredentialHeaders(deps.clients, backend, baseUrl, { method, url: target.href, headers: { accept: 'application/json', ...o.headers }, payloadSha256: null }, call.ctx.signal)
        call.ctx.attempts++
        called = true
        const res = await callBackend(deps.clients, backend, target.origin, { method, path: target.pathname + target.search, headers, body: o.body ?? null, signal: call.ctx.signal })
        leaveCircuit(rt.router.breakers, backend.id, trial, { status: res.statusCode, headers: res.headers })
        return res
      },
    }
    await fn(op)
  } catch (err) {
    if (err instanceof ClientAbortError || (call.ctx.signal.aborted && !(err instanceof GatewayError))) {
      call.finish(499, null, null)
      if (!reply.raw.headersSent && !reply.raw.destroyed) reply.raw.destroy()
      return
    }
    if (err instanceof UpstreamFailure && called) leaveCircuit(rt.router.breakers, backend.id, trial, err)
    const gwErr = toGatewayError(err)
    if (gwErr.code === GW_ERR.INTERNAL.code) deps.proxy.logger.error({ err, reqId: req.id }, 'unexpected error on a files route')
    call.finish(gwErr.status, null, gwErr)
    if (reply.raw.headersSent || reply.sent) { if (!reply.raw.writableEnded) reply.raw.destroy(); return }
    if (err instanceof BodyTooLargeError || err instanceof BodyCutError || (req.method === 'POST' && !req.raw.complete)) {
      // The rest of the upload is not read: answer, then close the connection.
      void reply.header('connection', 'close')
      const socket = req.raw.socket
      reply.raw.once('finish', () => { setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref() })
    }
    sendError(reply, gwErr, null)
  }
}

/**
 * The backend URL of a Files/Batch API path: OpenAI-style backends under their API root (`/v1` by default);
 * Azure OpenAI under `/openai/…?api-version=` (the backend's `apiVersion`), or `/openai/v1/…` for the v1 surface.
 * The client's own `api-version` is not forwarded: the backend's is the one it speaks.
 */
export function filesTarget(backend: BackendConfig, baseUrl: string, sub: string, query?: URLSearchParams): URL {
  const { origin, prefix } = backendBase(baseUrl)
  const q = new URLSearchParams(query)
  q.delete('api-version')
  let path: string
  if (backend.type === 'azure-openai') {
    const v = backend.apiVersion
    if (v === 'v1') path = `${prefix}/openai/v1/${sub}`
    else {
      path = `${prefix}/openai${v === 'preview' ? '/v1' : ''}/${sub}`
      q.set('api-version', v)
    }
  } else path = `${prefix === '' ? '/v1' : prefix}/${sub}`
  const s = q.toString()
  return new URL(origin + path + (s ? `?${s}` : ''))
}

function idParam(op: Op): string {
  const id = (op.req.params as { id?: string }).id ?? ''
  if (!OBJECT_ID.test(id)) throw notFound('file', id)
  return id
}

function notFound(kind: OwnedKind, id: string): GatewayError {
  return new GatewayError(GW_ERR.NOT_FOUND, kind === 'file' ? `No such File object: ${clipText(id)}` : `No batch found with id '${clipText(id)}'.`, { param: kind === 'file' ? 'id' : 'batch_id' })
}

/** The caller's own object, or the 404 an unknown id gets (another consumer's id is indistinguishable from none). */
async function owned(op: Op, kind: OwnedKind, id: string): Promise<void> {
  const o = await op.owners.get(kind, op.backend.id, id)
  if (!o || o.consumer !== op.consumer) throw notFound(kind, id)
}

async function readJson(op: Op, res: Upstream): Promise<{ text: string; body: Json }> {
  const length = Number(res.headers['content-length'] ?? NaN)
  if (length > MAX_JSON_ANSWER) {
    discard(res.body)
    throw new GatewayError(GW_ERR.BAD_GATEWAY, `Backend "${op.backend.id}" answered more than the gateway reads.`)
  }
  let text: string
  try {
    text = await res.body.text()
  } catch {
    if (op.call.ctx.signal.aborted) throw new ClientAbortError()
    throw new GatewayError(GW_ERR.BAD_GATEWAY, `Backend "${op.backend.id}" closed the connection mid-answer.`)
  }
  let body: Json = {}
  try {
    const v: unknown = JSON.parse(text)
    if (v && typeof v === 'object' && !Array.isArray(v)) body = v as Json
  } catch { /* judged below by status */ }
  return { text, body }
}

/** A backend error as the client should see it: its own 4xx rebuilt (never relayed raw), the rest the gateway's. */
function backendError(op: Op, status: number, body: Json, headers: Upstream['headers']): GatewayError {
  if (status === 401 || status === 403) return new GatewayError(GW_ERR.BAD_GATEWAY, `Backend "${op.backend.id}" refused the gateway's credentials.`)
  if (status === 429) {
    const retry = headers['retry-after']
    return new GatewayError(GW_ERR.RATE_LIMIT_EXCEEDED, `Backend "${op.backend.id}" is rate limiting; retry later.`, { headers: typeof retry === 'string' ? { 'retry-after': retry } : {} })
  }
  if (status >= 500 || status === 408) return new GatewayError(GW_ERR.BAD_GATEWAY, `Backend "${op.backend.id}" failed with status ${status}.`)
  return new PassThroughError(status, body)
}

/** Reads the answer; a success is sent as the backend wrote it (after `onOk`), an error rebuilt. */
async function answerJson(op: Op, res: Upstream, onOk?: (body: Json) => Promise<Json | void>): Promise<void> {
  const { text, body } = await readJson(op, res)
  if (res.statusCode >= 400) throw backendError(op, res.statusCode, body, res.headers)
  if (res.statusCode < 200 || res.statusCode >= 300 || Object.keys(body).length === 0) {
    throw new GatewayError(GW_ERR.BAD_GATEWAY, `Backend "${op.backend.id}" sent an answer that is not a JSON object.`)
  }
  const rewritten = onOk ? await onOk(body) : undefined
  op.call.finish(res.statusCode, null, null)
  void op.reply.code(res.statusCode).headers({ ...op.call.ctx.responseHeaders, 'content-type': 'application/json', 'x-sluice-backend': op.backend.id }).send(rewritten ? JSON.stringify(rewritten) : text)
}

/** A list filtered to the caller's own ids, its cursor fields recomputed (has_more stays the backend's). */
function ownList(body: Json, mine: Set<string>): Json {
  const data = (Array.isArray(body.data) ? body.data : []).filter((x): x is Json => !!x && typeof x === 'object' && mine.has(String((x as Json).id)))
  return { ...body, data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null }
}

// --------------------------------------------------------------------------------------------------------
// Files
// --------------------------------------------------------------------------------------------------------

async function upload(op: Op): Promise<void> {
  const type = op.req.headers['content-type'] ?? ''
  if (!/^multipart\/form-data\s*;\s*boundary=/i.test(type)) {
    throw new GatewayError(GW_ERR.INVALID_REQUEST, "An upload is multipart/form-data with a 'file' and a 'purpose'.", { param: 'file' })
  }
  const declared = op.req.headers['content-length']
  if (declared !== undefined && Number(declared) > op.maxUploadBytes) {
    throw new BodyTooLargeError(op.maxUploadBytes) // answered before a byte of the body is read
  }
  const headers: Record<string, string> = { 'content-type': type }
  if (declared !== undefined) headers['content-length'] = declared
  const res = await op.send('POST', 'files', { headers, body: limitedBody(op.req.raw, op.maxUploadBytes) })
  await answerJson(op, res, async (file) => {
    const id = String(file.id ?? '')
    if (!OBJECT_ID.test(id)) throw new GatewayError(GW_ERR.BAD_GATEWAY, `Backend "${op.backend.id}" answered an upload without a usable file id.`)
    await op.owners.put({ kind: 'file', id, backend: op.backend.id, consumer: op.consumer, createdAt: Date.now(), batchId: null })
  })
}

/** Upstream pages read at most to fill one page of the caller's own objects. */
const MAX_PAGES = 5

/**
 * The caller's page of a list: the backend's page filtered to the caller's ids; while that leaves fewer than
 * `limit` and the backend has more, its next pages are read too (at most MAX_PAGES in all). The cursor the
 * client gets (`last_id`) is always one of its own ids, so paging on from it never names another's object.
 */
async function ownPages(op: Op, sub: 'files' | 'batches', kind: OwnedKind): Promise<void> {
  const query = new URL(op.req.url, 'http://x').searchParams
  const limit = query.has('limit') ? Math.min(Math.max(Number(query.get('limit')) || 1, 1), 10_000) : Number.MAX_SAFE_INTEGER
  const mine = await op.owners.idsOf(kind, op.backend.id, op.consumer)
  let res = await op.send('GET', sub, { query })
  let first: { text: string; body: Json } | null = null
  const data: Json[] = []
  for (let page = 1; ; page++) {
    const read = await readJson(op, res)
    if (res.statusCode >= 400) throw backendError(op, res.statusCode, read.body, res.headers)
    if (!Array.isArray(read.body.data)) throw new GatewayError(GW_ERR.BAD_GATEWAY, `Backend "${op.backend.id}" sent a list that is not a list.`)
    first ??= read
    const items = read.body.data as Json[]
    data.push(...(ownList(read.body, mine).data as Json[]))
    const upstreamLast = items.at(-1)?.id
    if (read.body.has_more !== true || data.length >= limit || page >= MAX_PAGES || typeof upstreamLast !== 'string') {
      const own = { ...first.body, data: data.slice(0, limit), first_id: data[0]?.id ?? null, last_id: data.slice(0, limit).at(-1)?.id ?? null, has_more: data.length > limit || read.body.has_more === true }
      if (kind === 'batch') for (const b of own.data) await adoptOutputs(op, b)
      op.call.finish(200, null, null)
      void op.reply.code(200).headers({ ...op.call.ctx.responseHeaders, 'content-type': 'application/json', 'x-sluice-backend': op.backend.id }).send(JSON.stringify(own))
      return
    }
    const next = new URLSearchParams(query)
    next.set('after', upstreamLast)
    res = await op.send('GET', sub, { query: next })
  }
}

async function listFiles(op: Op): Promise<void> {
  await ownPages(op, 'files', 'file')
}

function retrieve(kind: OwnedKind): Handler {
  return async (op) => {
    const id = idParam(op)
    await owned(op, kind, id)
    const res = await op.send('GET', `${kind === 'file' ? 'files' : 'batches'}/${encodeURIComponent(id)}`)
    await answerJson(op, res, kind === 'batch' ? (b) => adoptOutputs(op, b) : undefined)
  }
}

async function deleteFile(op: Op): Promise<void> {
  const id = idParam(op)
  await owned(op, 'file', id)
  const res = await op.send('DELETE', `files/${encodeURIComponent(id)}`)
  await answerJson(op, res, async (body) => { if (body.deleted === true) await op.owners.remove('file', op.backend.id, id) })
}

/** The file's bytes streamed back as they come; a batch's output file records the batch's usage once read whole. */
async function content(op: Op): Promise<void> {
  const id = idParam(op)
  const own = await op.owners.get('file', op.backend.id, id)
  if (!own || own.consumer !== op.consumer) throw notFound('file', id)
  const res = await op.send('GET', `files/${encodeURIComponent(id)}/content`)
  if (res.statusCode >= 300) {
    const { body } = await readJson(op, res)
    throw backendError(op, res.statusCode, body, res.headers)
  }
  const tap = own.batchId ? new BatchUsageTap() : null
  const out = op.reply.raw
  op.reply.hijack()
  const length = res.headers['content-length']
  out.writeHead(200, {
    ...op.call.ctx.responseHeaders,
    'content-type': String(res.headers['content-type'] ?? 'application/octet-stream'),
    ...(typeof length === 'string' ? { 'content-length': length } : {}),
    'x-request-id': op.call.ctx.id,
    'x-sluice-backend': op.backend.id,
  })
  try {
    for await (const chunk of res.body) {
      tap?.push(chunk as Buffer)
      if (!out.write(chunk)) await once(out, 'drain', { signal: op.call.ctx.signal })
    }
  } catch {
    discard(res.body)
    op.call.finish(op.call.ctx.signal.aborted ? 499 : 502, null, op.call.ctx.signal.aborted ? null : new GatewayError(GW_ERR.BAD_GATEWAY, `Backend "${op.backend.id}" closed the connection mid-file.`))
    out.destroy()
    return
  }
  op.call.finish(200, null, null)
  out.end()
  if (tap && own.batchId) {
    tap.end()
    void recordBatchUsage(op, own.batchId, tap).catch((err: unknown) => op.deps.proxy.logger.warn({ err, reqId: op.req.id }, 'recording a batch\'s usage failed'))
  }
}

// --------------------------------------------------------------------------------------------------------
// Batches
// --------------------------------------------------------------------------------------------------------

async function createBatch(op: Op): Promise<void> {
  const raw = await readWhole(op.req.raw, op.maxJsonBytes)
  const parsed = parseJsonBody(raw.toString('utf8'), op.rt.snapshot.config.listen.maxJsonDepth)
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new GatewayError(GW_ERR.INVALID_REQUEST, 'The request body must be a JSON object.')
  const input = (parsed as Json).input_file_id
  if (typeof input !== 'string' || !OBJECT_ID.test(input)) throw new GatewayError(GW_ERR.INVALID_REQUEST, "Missing required parameter: 'input_file_id'.", { param: 'input_file_id' })
  await owned(op, 'file', input)
  const res = await op.send('POST', 'batches', { headers: { 'content-type': 'application/json', 'content-length': String(raw.length) }, body: raw })
  await answerJson(op, res, async (batch) => {
    const id = String(batch.id ?? '')
    if (!OBJECT_ID.test(id)) throw new GatewayError(GW_ERR.BAD_GATEWAY, `Backend "${op.backend.id}" answered a batch without a usable id.`)
    await op.owners.put({ kind: 'batch', id, backend: op.backend.id, consumer: op.consumer, createdAt: Date.now(), batchId: null })
    await adoptOutputs(op, batch)
  })
}

async function listBatches(op: Op): Promise<void> {
  await ownPages(op, 'batches', 'batch')
}

async function cancelBatch(op: Op): Promise<void> {
  const id = idParam(op)
  await owned(op, 'batch', id)
  const res = await op.send('POST', `batches/${encodeURIComponent(id)}/cancel`)
  await answerJson(op, res, (b) => adoptOutputs(op, b))
}

/** A batch's output and error files belong to the batch's owner (who never uploaded them). */
async function adoptOutputs(op: Op, batch: Json): Promise<void> {
  const batchId = String(batch.id ?? '')
  if (!OBJECT_ID.test(batchId)) return
  for (const field of ['output_file_id', 'error_file_id'] as const) {
    const id = batch[field]
    if (typeof id === 'string' && OBJECT_ID.test(id)) {
      await op.owners.put({ kind: 'file', id, backend: op.backend.id, consumer: op.consumer, createdAt: Date.now(), batchId })
    }
  }
}

/**
 * One ledger row per model of the batch, at the batch price, recorded by whichever fetch of the output file
 * claims the batch first (the claim lives in the shared store, so replicas and repeated fetches agree). The
 * row's request id is the batch id, so the batch's cost can be found by it.
 */
async function recordBatchUsage(op: Op, batchId: string, tap: BatchUsageTap): Promise<void> {
  const ledger = op.deps.ledger
  if (!ledger || tap.byModel.size === 0) return
  if (!(await op.owners.claimBatchUsage(op.backend.id, batchId, Date.now()))) return
  const snap = op.rt.snapshot
  const principal = op.req.sluice?.principal ?? null
  const overrides = snap.config.pricing.models
  for (const [upstreamModel, usage] of tap.byModel) {
    const model = recordedModel(snap, op.backend, upstreamModel)
    const price = batchPriceOf(model, overrides) ?? batchPriceOf(upstreamModel, overrides)
    ledger.recordUsage({
      ts: Date.now(), requestId: batchId, consumer: principal?.consumerId ?? null, product: principal?.productId ?? null, model, backend: op.backend.id,
      status: 200, promptTokens: usage.promptTokens, completionTokens: usage.completionTokens, cachedTokens: usage.cachedTokens, reasoningTokens: usage.reasoningTokens,
      costUsd: price === null ? null : batchCost(price, usage), latencyMs: 0, ttftMs: null, cacheHit: false, savedUsd: 0, stream: false, attempts: 0, errorCode: null,
    })
  }
  if (tap.skipped > 0) op.deps.proxy.logger.warn({ batchId: clipText(batchId), skipped: tap.skipped }, 'batch output lines that could not be read were not counted')
}

/**
 * The model a batch line's answer names, as recorded: a configured model, the public name of a deployment at
 * this backend, or a model of the price table (a closed list); anything else is the client's free text.
 */
function recordedModel(snap: Snapshot, backend: BackendConfig, name: string): string {
  if (snap.models.has(name)) return name
  for (const [pub, dep] of Object.entries(backend.models ?? {})) if (dep === name && snap.models.has(pub)) return pub
  if (batchPriceOf(name, snap.config.pricing.models)) return normaliseModel(name)
  return UNKNOWN_MODEL
}
