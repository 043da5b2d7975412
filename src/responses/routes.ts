import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify'
import type { BackendConfig } from '../config/schema.ts'
import type { Principal } from '../core/context.ts'
import { GatewayError, GW_ERR } from '../core/errors.ts'
import { clipText } from '../core/bounded.ts'
import { providerFor } from '../providers/index.ts'
import type { UpstreamClients } from '../upstream/client.ts'
import { proxyRequest, type ProxyDeps } from '../server/proxy.ts'
import { responsesDoor } from '../server/front-doors/responses.ts'
import { clientOutput } from '../translate/responses-to-openai.ts'
import { previousNotFound, type Continuation, type ResponsesService } from './service.ts'
import type { StoredResponse } from './store.ts'

type Json = Record<string, unknown>

export interface ResponsesRouteDeps {
  readonly proxy: ProxyDeps
  readonly service: ResponsesService
  readonly clients: UpstreamClients
  readonly baseUrlOf: (b: BackendConfig) => string
  /** The admission hook (auth, concurrency, body budget) every data-plane POST runs. */
  readonly admit: onRequestHookHandler
}

const ID = /^[A-Za-z0-9_-]{1,256}$/

const notFound = (id: string) => new GatewayError(GW_ERR.NOT_FOUND, `No response found with id '${clipText(id, 128)}'.`, { param: 'response_id' })

/**
 * The Responses API on every backend: POST (translated, or passed through to a backend that speaks it), GET,
 * DELETE and input_items of stored responses, at OpenAI's paths and Azure's (`/openai/v1/responses`,
 * `/openai/responses?api-version=…`, `/openai/deployments/{d}/responses`).
 */
export function registerResponses(app: FastifyInstance, deps: ResponsesRouteDeps): void {
  const prefixes = ['/v1/responses', '/openai/v1/responses', '/openai/responses']
  for (const p of prefixes) {
    app.post(p, { onRequest: deps.admit }, (req, reply) => create(deps, req, reply, null))
    app.get<{ Params: { id: string } }>(`${p}/:id`, (req, reply) => retrieve(deps, req, reply))
    app.delete<{ Params: { id: string } }>(`${p}/:id`, (req, reply) => remove(deps, req, reply))
    app.get<{ Params: { id: string } }>(`${p}/:id/input_items`, (req, reply) => inputItems(deps, req, reply))
  }
  app.post<{ Params: { deployment: string } }>('/openai/deployments/:deployment/responses', { onRequest: deps.admit }, (req, reply) => create(deps, req, reply, req.params.deployment))
}

async function principalOf(deps: ResponsesRouteDeps, req: FastifyRequest): Promise<Principal> {
  if (req.sluice) return req.sluice.principal
  const rt = deps.proxy.runtime()
  const p = deps.proxy.auth.resolve(rt.snapshot, req.headers, req.ip)
  return p instanceof Promise ? await p : p
}

async function create(deps: ResponsesRouteDeps, req: FastifyRequest, reply: FastifyReply, deployment: string | null): Promise<void> {
  const principal = await principalOf(deps, req)
  const body = req.body as Json | undefined
  let previous: Continuation | null = null
  const prev = body && typeof body === 'object' ? body.previous_response_id : undefined
  if (typeof prev === 'string') {
    if (!ID.test(prev)) throw previousNotFound(prev)
    previous = await deps.service.continuation(prev, principal.consumerId)
    if (previous.kind === 'native') checkServes(deps, previous.backendId, typeof body!.model === 'string' ? body!.model : deployment, prev)
  }
  const door = responsesDoor({ service: deps.service, consumerId: principal.consumerId, previous, now: deps.proxy.now })
  return proxyRequest(deps.proxy, req, reply, 'chat.completions', deployment, door)
}

/** A natively kept conversation can only go on where its state is: the backend must serve the model. */
function checkServes(deps: ResponsesRouteDeps, backendId: string, model: string | null, prev: string): void {
  const snapshot = deps.proxy.runtime().snapshot
  const m = model === null ? undefined : snapshot.models.get(model)
  if (!m) return // the kernel answers an unknown model as it always does
  const seen = new Set<string>()
  const queue = [m.name]
  while (queue.length) {
    const name = queue.shift()!
    if (seen.has(name)) continue
    seen.add(name)
    const mc = snapshot.models.get(name)
    if (!mc) continue
    if (mc.target) {
      const pool = snapshot.pools.get(mc.target)
      if (mc.target === backendId || pool?.members.some((x) => x.backend === backendId)) return
    }
    queue.push(...mc.fallbacks, ...(mc.race?.models ?? []), ...((mc as { split?: { model: string }[] }).split?.map((s) => s.model) ?? []))
  }
  throw new GatewayError(GW_ERR.INVALID_REQUEST,
    `Previous response with id '${clipText(prev, 128)}' was created by backend "${clipText(backendId, 64)}", which keeps its state and does not serve the model "${clipText(m.name, 128)}": the conversation cannot continue elsewhere.`,
    { param: 'previous_response_id' })
}

function checkId(id: string): void {
  if (!ID.test(id)) throw notFound(id)
}

/** `include` from the query (`include[]=…` or `include=…`, repeated or not). */
function includeOf(req: FastifyRequest): string[] {
  const q = req.query as Record<string, unknown>
  const v = q['include[]'] ?? q.include
  return (Array.isArray(v) ? v : v === undefined ? [] : [v]).map(String)
}

async function retrieve(deps: ResponsesRouteDeps, req: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply): Promise<void> {
  const principal = await principalOf(deps, req)
  checkId(req.params.id)
  const r = await deps.service.find(req.params.id, principal.consumerId)
  if (!r) throw notFound(req.params.id)
  if (r.backendId !== null) return forward(deps, r, 'GET', req, reply, '')
  const response = r.response
  await reply.type('application/json').send(JSON.stringify({ ...response, output: clientOutput(r.output as Json[], { include: includeOf(req) }) }))
}

async function remove(deps: ResponsesRouteDeps, req: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply): Promise<void> {
  const principal = await principalOf(deps, req)
  checkId(req.params.id)
  const r = await deps.service.find(req.params.id, principal.consumerId)
  if (!r) throw notFound(req.params.id)
  await deps.service.remove(r.id, principal.consumerId)
  if (r.backendId !== null) return forward(deps, r, 'DELETE', req, reply, '')
  await reply.type('application/json').send(JSON.stringify({ id: r.id, object: 'response', deleted: true }))
}

async function inputItems(deps: ResponsesRouteDeps, req: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply): Promise<void> {
  const principal = await principalOf(deps, req)
  checkId(req.params.id)
  const q = req.query as Record<string, unknown>
  const limit = q.limit === undefined ? 20 : Number(q.limit)
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw new GatewayError(GW_ERR.INVALID_REQUEST, "Invalid 'limit': expected an integer between 1 and 100.", { param: 'limit' })
  const order = q.order === undefined ? 'desc' : q.order
  if (order !== 'asc' && order !== 'desc') throw new GatewayError(GW_ERR.INVALID_REQUEST, "Invalid 'order': expected 'asc' or 'desc'.", { param: 'order' })
  const chain = await deps.service.chain(req.params.id, principal.consumerId)
  const own = chain[chain.length - 1]
  if (!own || own.id !== req.params.id) throw notFound(req.params.id)
  if (own.backendId !== null) return forward(deps, own, 'GET', req, reply, '/input_items')
  // The response's input is everything the model was given: the earlier turns' inputs and outputs, then its own.
  const all: Json[] = [...chain.slice(0, -1).flatMap((r) => [...r.input, ...r.output]), ...own.input]
  const items = clientOutput(order === 'desc' ? [...all].reverse() : all, { include: includeOf(req) })
  let start = 0
  const after = typeof q.after === 'string' ? q.after : null
  if (after !== null) {
    const at = items.findIndex((it) => it.id === after)
    start = at === -1 ? items.length : at + 1
  }
  const page = items.slice(start, start + limit)
  await reply.type('application/json').send(JSON.stringify({
    object: 'list', data: page, first_id: page[0]?.id ?? null, last_id: page[page.length - 1]?.id ?? null, has_more: start + limit < items.length,
  }))
}

/** GET / DELETE of a natively kept response: asked of the backend that keeps it, with the backend's credentials. */
async function forward(deps: ResponsesRouteDeps, r: StoredResponse, method: 'GET' | 'DELETE', req: FastifyRequest, reply: FastifyReply, suffix: string): Promise<void> {
  const snapshot = deps.proxy.runtime().snapshot
  const backend = snapshot.backends.get(r.backendId!)
  if (!backend) throw new GatewayError(GW_ERR.NOT_FOUND, `Response '${clipText(r.id, 128)}' is kept by backend "${clipText(r.backendId!, 64)}", which is no longer configured.`, { param: 'response_id' })
  const provider = providerFor(backend.type)
  const upstreamModel = backend.models?.[r.model] ?? r.model
  const target = provider.target(backend, 'responses', upstreamModel, deps.baseUrlOf(backend), false)
  const [path, query] = target.path.split('?') as [string, string | undefined]
  const url = `${path}/${encodeURIComponent(r.id)}${suffix}${query ? `?${query}` : ''}`
  const signal = AbortSignal.timeout(backend.timeout)
  const credentials = deps.clients.credentials.of(backend)
  const headers = credentials === null ? target.headers : { ...target.headers, ...(await credentials.headers({ method, url: target.origin + url, headers: target.headers, body: '' }, signal)) }
  const res = await deps.clients.poolFor(backend, target.origin).request({ method, path: url, headers, signal }).catch(() => {
    throw new GatewayError(GW_ERR.BAD_GATEWAY, `Backend "${backend.id}" could not be reached for response '${clipText(r.id, 128)}'.`)
  })
  const text = await res.body.text()
  if (res.statusCode === 404) throw notFound(r.id)
  if (res.statusCode !== 200) throw new GatewayError(GW_ERR.BAD_GATEWAY, `Backend "${backend.id}" answered ${res.statusCode} for response '${clipText(r.id, 128)}'.`)
  await reply.code(200).type('application/json').header('x-sluice-backend', backend.id).send(text)
}
