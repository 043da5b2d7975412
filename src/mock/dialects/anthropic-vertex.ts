import { after, elapsed, header, sendJson } from '../engine.ts'
import { anthropicDialect } from './anthropic.ts'
import { rpcError } from './gemini.ts'
import { verifyGoogleToken } from './google-identity.ts'
import type { MockDialect } from './index.ts'

/**
 * Anthropic's Claude models on Vertex AI: `POST /v1/projects/{p}/locations/{r}/publishers/anthropic/models/{m}:rawPredict`
 * (and `:streamRawPredict`), a bearer token the mock's google-identity endpoint issued, and the Messages body
 * with `anthropic_version: "vertex-2023-10-16"` in place of the header and no `model` (it is in the URL).
 * Checked here, then answered by the Anthropic dialect exactly as api.anthropic.com would; except a 429, which
 * is Vertex's own quota and comes in Google's envelope (RESOURCE_EXHAUSTED with its RetryInfo).
 */
const PATH = /^\/(v1|v1beta1)\/projects\/([^/]+)\/locations\/([^/]+)\/publishers\/anthropic\/models\/([^/:]+):(rawPredict|streamRawPredict)$/

function refuse(ctx: Parameters<MockDialect['handle']>[0], status: number, message: string): void {
  sendJson(ctx, status, { type: 'error', error: { type: status === 401 ? 'authentication_error' : 'invalid_request_error', message } })
}

export const anthropicVertexDialect: MockDialect = {
  name: 'anthropic-vertex',
  matches: (method, path) => method === 'POST' && PATH.test(path),
  handle(ctx, raw, path) {
    const m = PATH.exec(path)!
    const token = /^Bearer\s+(.+)$/i.exec(header(ctx.req, 'authorization') ?? '')?.[1]
    if (!token || !verifyGoogleToken(token)) return refuse(ctx, 401, 'Request had invalid authentication credentials. Expected OAuth 2 access token.')
    let body: Record<string, unknown>
    try {
      body = JSON.parse(raw.toString('utf8')) as Record<string, unknown>
    } catch {
      return refuse(ctx, 400, 'Invalid JSON payload received.')
    }
    if (!body || typeof body !== 'object' || Array.isArray(body)) return refuse(ctx, 400, 'The request body must be a JSON object.')
    if (body.anthropic_version !== 'vertex-2023-10-16') return refuse(ctx, 400, 'anthropic_version: "vertex-2023-10-16" is required in the body.')
    if (body.model !== undefined) return refuse(ctx, 400, 'model: Extra inputs are not permitted (the model is in the URL).')
    if (ctx.eff.fail === 429) return after(ctx, ctx.eff.latencyMs - elapsed(ctx), () => sendJson(ctx, 429, rpcError(429, 'Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model. (mock)', ctx.eff.retryAfter)))
    const streaming = m[5] === 'streamRawPredict'
    if (streaming !== (body.stream === true)) return refuse(ctx, 400, `stream must be ${streaming} on :${m[5]}.`)
    const { anthropic_version: _v, ...rest } = body
    // What Vertex does before the model sees the request: the URL's model and the version as the API's header.
    ctx.req.headers['anthropic-version'] = '2023-06-01'
    anthropicDialect.handle(ctx, Buffer.from(JSON.stringify({ model: decodeURIComponent(m[4]!), ...rest })), '/v1/messages')
  },
}
