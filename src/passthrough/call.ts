import type { FastifyReply, FastifyRequest } from 'fastify'
import { createRequestContext, type RequestContext } from '../core/context.ts'
import type { GatewayError } from '../core/errors.ts'
import type { Usage } from '../core/usage.ts'
import type { ProxyDeps } from '../server/proxy.ts'
import type { Runtime } from '../server/runtime.ts'

/**
 * One relayed call (a passthrough request, a files or batches request) as the rest of the gateway sees it:
 * a request context the product's request-rate limits run on, and at the end one ledger row and the
 * request metrics, handed over off the client's path exactly like a proxied chat request's.
 */

/** Policies that apply to calls whose bodies the gateway does not read: request counting and suspension. */
const RELAYED_POLICIES = new Set(['consumer-suspension', 'rate-limit'])

export interface RelayedCall {
  readonly ctx: RequestContext
  readonly controller: AbortController
  /** Records the call once (later calls are ignored). */
  finish(status: number, usage: Usage | null, error: GatewayError | null): void
}

export function startCall(deps: ProxyDeps, req: FastifyRequest, reply: FastifyReply, model: string, stream: boolean): RelayedCall {
  const controller = new AbortController()
  const ctx = createRequestContext({
    id: req.id,
    startedAt: deps.now(),
    operation: 'chat.completions',
    info: { method: req.method, path: req.url, ip: req.ip, headers: req.headers },
    signal: controller.signal,
    model,
    body: {},
    stream,
    clientWantsStreamUsage: false,
  })
  ctx.principal = req.sluice?.principal ?? null
  deps.inflight.count++
  // The client going away before the answer is complete stops the upstream call.
  const res = reply.raw
  const onGone = () => { if (!res.writableFinished) controller.abort() }
  res.once('close', onGone)
  let done = false
  return {
    ctx,
    controller,
    finish(status, usage, error) {
      if (done) return
      done = true
      deps.inflight.count--
      res.off('close', onGone)
      if (usage) ctx.usage = usage
      const outcome = { status, usage, error, aborted: controller.signal.aborted && status === 499, endedAt: deps.now(), completionText: null, servedBy: null }
      try { deps.ledger?.record(ctx, outcome) } catch (err) { deps.logger.warn({ err, reqId: ctx.id }, 'ledger record failed') }
      setImmediate(() => {
        try { deps.telemetry?.recordRequest(ctx, outcome) } catch (err) { deps.logger.warn({ err, reqId: ctx.id }, 'recording metrics failed') }
        deps.logger.info({ reqId: ctx.id, consumer: ctx.principal?.consumerId ?? null, model: ctx.model, backend: ctx.backendId, status, latencyMs: outcome.endedAt - ctx.startedAt, promptTokens: usage?.promptTokens ?? null, completionTokens: usage?.completionTokens ?? null, error: error?.code ?? null }, 'request')
      })
    },
  }
}

/** Runs the product's request-rate limits (and the suspension check) on the call; throws their refusal. */
export async function admitCall(rt: Runtime, ctx: RequestContext): Promise<void> {
  const pipeline = rt.pipelineFor(ctx.principal?.productId ?? null)
  for (const p of pipeline.policies) {
    if (p.inbound && RELAYED_POLICIES.has(p.name)) await p.inbound(ctx)
  }
}
