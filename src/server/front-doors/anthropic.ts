import type { FastifyReply, FastifyRequest } from 'fastify'
import { GatewayError, GW_ERR } from '../../core/errors.ts'
import { modelAllowed } from '../../config/snapshot.ts'
import { estimatePromptTokens } from '../../tokens/count.ts'
import { anthropicRequestToHub, hubToAnthropicMessage } from '../../translate/anthropic-to-openai.ts'
import { AnthropicStreamEncoder } from '../../translate/anthropic-to-openai-stream.ts'
import { isPassthroughFrame } from '../../translate/stream.ts'
import { PassThroughError } from '../../upstream/router.ts'
import type { ProxyDeps } from '../proxy.ts'
import { validateBody } from '../validate.ts'
import type { FrontDoor, StreamWriter } from './types.ts'

const invalid = (message: string, param: string | null = null) => new GatewayError(GW_ERR.INVALID_REQUEST, message, { param })

/**
 * Anthropic's Messages API (`POST /v1/messages`) in front of any backend: the request is translated to the hub
 * (anthropic-to-openai.ts), answers and stream chunks back to Anthropic's shapes event by event; when the
 * backend itself speaks Anthropic, its bytes come back untouched (passthrough frames, `native` JSON text).
 */
export const anthropicDoor: FrontDoor = {
  schema: 'anthropic',
  parse(_operation, body, _modelFromPath, headers, ceilings) {
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw invalid('The request body must be a JSON object.')
    const b = body as Record<string, unknown>
    const { hub, omitted } = anthropicRequestToHub(b)
    // The kernel's own checks and ceilings (max_tokens, n) on what the request became.
    validateBody('chat.completions', hub, null, ceilings)
    const beta = headers['anthropic-beta']
    const betas = typeof beta === 'string' && beta.length <= 1024 ? { 'anthropic-beta': beta } : undefined
    return {
      model: b.model as string,
      body: hub,
      stream: b.stream === true,
      // The usage chunk is what message_delta's usage is made of: always relayed to the encoder.
      clientWantsStreamUsage: true,
      client: { schema: 'anthropic', body: b, omitted, headers: betas },
    }
  },
  json(result, requestId) {
    if (result.native?.schema === 'anthropic' && !result.modified) return result.native.text
    return JSON.stringify(hubToAnthropicMessage(result.body, requestId))
  },
  streamWriter(_operation, model, requestId): StreamWriter {
    const encoder = new AnthropicStreamEncoder(model, requestId)
    let native = false
    return {
      frame(frame, json) {
        if (isPassthroughFrame(frame)) {
          native = true
          return frame.native
        }
        // A passthrough stream's trailing accounting chunks are not the client's; nor is a hub `[DONE]`.
        if (native || json === null) return ''
        return encoder.chunk(json)
      },
      end: () => (native ? '' : encoder.end()),
      error: (err) => encoder.error(err),
    }
  },
  errorBody(err) {
    if (err instanceof PassThroughError && err.native?.schema === 'anthropic') return err.native.body
    return err.toAnthropicJSON()
  },
  headers(h, requestId) {
    const out: Record<string, string> = { ...h, 'request-id': requestId }
    for (const family of ['requests', 'tokens'] as const) {
      const limit = h[`x-ratelimit-limit-${family}`]
      if (limit === undefined) continue
      out[`anthropic-ratelimit-${family}-limit`] = limit
      const remaining = h[`x-ratelimit-remaining-${family}`]
      if (remaining !== undefined) out[`anthropic-ratelimit-${family}-remaining`] = remaining
      const reset = resetAt(h[`x-ratelimit-reset-${family}`])
      if (reset !== null) out[`anthropic-ratelimit-${family}-reset`] = reset
    }
    return out
  },
}

/** OpenAI's reset duration (`250ms`, `1.5s`, `6m0s`, `2h3m4s`) → Anthropic's RFC 3339 instant. */
export function resetAt(duration: string | undefined, now = Date.now()): string | null {
  if (!duration) return null
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/g
  let ms = 0
  let any = false
  for (let m = re.exec(duration); m !== null; m = re.exec(duration)) {
    any = true
    const n = Number(m[1])
    ms += m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n * 3_600_000
  }
  if (!any) return null
  return new Date(Math.ceil((now + ms) / 1000) * 1000).toISOString().replace('.000Z', 'Z')
}

/**
 * `POST /v1/messages/count_tokens`: the same auth and model checks as `/v1/messages`, answered by the
 * gateway's tokenizer from the translated (hub) request, whichever backend serves the model. No backend call,
 * no ledger row: counting is free, as it is at Anthropic.
 */
export async function countTokens(deps: ProxyDeps, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const rt = deps.runtime()
  const principal = await deps.auth.resolve(rt.snapshot, req.headers)
  const body = req.body
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw invalid('The request body must be a JSON object.')
  // count_tokens takes no max_tokens; the translation wants one.
  const { hub } = anthropicRequestToHub({ ...(body as Record<string, unknown>), max_tokens: 1, stream: undefined })
  const model = hub.model as string
  if (!rt.snapshot.models.has(model)) throw new GatewayError(GW_ERR.MODEL_NOT_FOUND, `The model "${model}" does not exist or you do not have access to it.`, { param: 'model' })
  if (!modelAllowed(rt.snapshot, principal.productId, model)) throw new GatewayError(GW_ERR.MODEL_NOT_ALLOWED, `Your key may not use the model "${model}".`, { param: 'model' })
  const input = estimatePromptTokens('chat.completions', hub, model)
  await reply.code(200).headers(anthropicDoor.headers({ 'content-type': 'application/json' }, req.id)).send(JSON.stringify({ input_tokens: input }))
}
