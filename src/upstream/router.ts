import type { BackendConfig, ModelConfig } from '../config/schema.ts'
import type { Snapshot } from '../config/snapshot.ts'
import type { RequestContext } from '../core/context.ts'
import { GatewayError, GW_ERR } from '../core/errors.ts'
import type { Dispatch, UpstreamResult } from '../core/pipeline.ts'
import { providerFor } from '../providers/index.ts'
import { sendUpstream, type UpstreamClients } from './client.ts'
import { UpstreamFailure, retryAfterMsFrom } from './failure.ts'

export type BaseUrlOf = (backend: BackendConfig) => string

/**
 * Picks a backend for the request's model and sends it. Builds the upstream body once per attempt from
 * the (possibly policy-edited) parsed request, with the backend's own model/deployment name.
 */
export class Router {
  private readonly cursors = new Map<string, number>()

  constructor(
    private readonly snapshot: Snapshot,
    private readonly clients: UpstreamClients,
    private readonly baseUrlOf: BaseUrlOf,
  ) {}

  readonly dispatch: Dispatch = async (ctx) => {
    const model = this.snapshot.models.get(ctx.model)
    if (!model) throw new GatewayError(GW_ERR.MODEL_NOT_FOUND, `The model "${ctx.model}" does not exist.`, { param: 'model' })
    const backend = this.pick(model)
    return this.attempt(ctx, model, backend)
  }

  /** Members of the model's target, in the order to try them. */
  candidates(model: ModelConfig): BackendConfig[] {
    const single = this.snapshot.backends.get(model.target)
    if (single) return [single]
    const pool = this.snapshot.pools.get(model.target)!
    return pool.members.map((m) => this.snapshot.backends.get(m.backend)!)
  }

  private pick(model: ModelConfig): BackendConfig {
    const list = this.candidates(model)
    if (list.length === 1) return list[0]!
    const i = this.cursors.get(model.target) ?? 0
    this.cursors.set(model.target, (i + 1) % list.length)
    return list[i % list.length]!
  }

  /** One attempt at one backend; HTTP errors that mean "this backend failed" become UpstreamFailure. */
  async attempt(ctx: RequestContext, model: ModelConfig, backend: BackendConfig): Promise<UpstreamResult> {
    const provider = providerFor(backend.type)
    if (!provider.operations.has(ctx.operation)) {
      throw new GatewayError(GW_ERR.UNSUPPORTED_OPERATION, `The model "${model.name}" does not support ${ctx.operation}.`)
    }
    const upstreamModel = backend.models?.[model.name] ?? model.name
    const target = provider.target(backend, ctx.operation, upstreamModel, this.baseUrlOf(backend))
    const body: Record<string, unknown> = { ...ctx.body, model: upstreamModel }
    // Ask for usage in streams so tokens are always accounted; the kernel strips it if the client did not ask.
    if (ctx.stream && (ctx.operation === 'chat.completions' || ctx.operation === 'completions')) {
      body.stream_options = { ...(ctx.body.stream_options as object | undefined), include_usage: true }
    }
    ctx.attempts++
    ctx.backendId = backend.id
    const pool = this.clients.poolFor(backend, target.origin)
    const result = await sendUpstream(pool, { backend, target, body: JSON.stringify(body), stream: ctx.stream, signal: ctx.signal })
    if (result.kind === 'json' && result.status >= 400) throw statusFailure(backend.id, result.status, result.headers, result.body)
    return result
  }
}

/** Upstream HTTP errors as the client should see them. Client errors (400, 404, 422) pass through as they are. */
function statusFailure(backendId: string, status: number, headers: Record<string, string>, body: Record<string, unknown>): GatewayError {
  const retryAfterMs = retryAfterMsFrom(headers)
  if (status === 429) {
    const f = new UpstreamFailure(GW_ERR.RATE_LIMIT_EXCEEDED, `Backend "${backendId}" is rate limiting; retry later.`, 'status', backendId, status, retryAfterMs)
    if (retryAfterMs !== null) Object.assign(f.headers, { 'retry-after': String(Math.ceil(retryAfterMs / 1000)), 'retry-after-ms': String(Math.ceil(retryAfterMs)) })
    return f
  }
  if (status === 401 || status === 403) {
    return new UpstreamFailure(GW_ERR.BAD_GATEWAY, `Backend "${backendId}" refused the gateway's credentials.`, 'status', backendId, status)
  }
  if (status >= 500 || status === 408) {
    return new UpstreamFailure(GW_ERR.BAD_GATEWAY, `Backend "${backendId}" failed with status ${status}.`, 'status', backendId, status, retryAfterMs)
  }
  return new PassThroughError(status, body)
}

/** A client error the backend reported (bad parameter, context too long…): relayed with its own body. */
export class PassThroughError extends GatewayError {
  constructor(status: number, readonly body: Record<string, unknown>) {
    const err = (body.error ?? {}) as { message?: unknown; type?: unknown; code?: unknown; param?: unknown }
    super(
      { status, type: typeof err.type === 'string' ? err.type : 'invalid_request_error', code: typeof err.code === 'string' ? err.code : 'invalid_request_error' },
      typeof err.message === 'string' ? err.message : `The backend refused the request (status ${status}).`,
      { param: typeof err.param === 'string' ? err.param : null },
    )
  }
}
