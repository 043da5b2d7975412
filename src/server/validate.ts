import type { Operation } from '../core/context.ts'
import { GatewayError, GW_ERR } from '../core/errors.ts'

const invalid = (message: string, param: string | null = null) => new GatewayError(GW_ERR.INVALID_REQUEST, message, { param })

/**
 * The checks the gateway needs before routing. Deeper validation is the backend's job: the gateway must not
 * reject requests a newer backend accepts, only those it cannot route or account for.
 */
/** What one request may ask for (config `requestLimits`). */
export interface RequestCeilings {
  readonly maxOutputTokens: number
  readonly maxChoices: number
}

const DEFAULT_CEILINGS: RequestCeilings = { maxOutputTokens: 1_000_000, maxChoices: 128 }

export function validateBody(operation: Operation, body: unknown, modelFromPath: string | null, ceilings: RequestCeilings = DEFAULT_CEILINGS): asserts body is Record<string, unknown> {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw invalid('The request body must be a JSON object.')
  const b = body as Record<string, unknown>
  if (modelFromPath === null && (typeof b.model !== 'string' || b.model === '')) throw invalid('You must provide a model parameter.', 'model')
  if (b.stream !== undefined && typeof b.stream !== 'boolean') throw invalid('"stream" must be a boolean.', 'stream')
  switch (operation) {
    case 'chat.completions':
      if (!Array.isArray(b.messages) || b.messages.length === 0) throw invalid('"messages" must be a non-empty array.', 'messages')
      for (const m of b.messages) {
        if (!m || typeof m !== 'object' || typeof (m as { role?: unknown }).role !== 'string') throw invalid('Each message must be an object with a "role".', 'messages')
      }
      break
    case 'completions':
      if (b.prompt === undefined) throw invalid('"prompt" is required.', 'prompt')
      break
    case 'embeddings':
      if (b.input === undefined || b.input === null || b.input === '') throw invalid('"input" is required.', 'input')
      if (b.stream === true) throw invalid('Embeddings cannot be streamed.', 'stream')
      break
    case 'responses':
      if (b.input === undefined && b.previous_response_id === undefined) throw invalid('"input" is required.', 'input')
      break
  }
  for (const field of ['max_tokens', 'max_completion_tokens', 'max_output_tokens', 'n']) {
    const v = b[field]
    if (v === undefined || v === null) continue
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw invalid(`"${field}" must be a positive integer.`, field)
    // A sane ceiling: nothing downstream (the in-process mock included) may size anything by 1e12.
    const max = field === 'n' ? ceilings.maxChoices : ceilings.maxOutputTokens
    if (v > max) throw invalid(`"${field}" may be at most ${max}.`, field)
  }
}
