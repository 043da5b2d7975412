import { randomBytes } from 'node:crypto'
import { GatewayError, GW_ERR } from '../../core/errors.ts'
import type { Continuation, ResponsesService } from '../../responses/service.ts'
import { decodeReasoning, clientOutput, hubToResponseOutput, responseObject, responsesRequestToHub, type ResponseFrame } from '../../translate/responses-to-openai.ts'
import { ResponsesStreamEncoder } from '../../translate/responses-to-openai-stream.ts'
import { isPassthroughFrame } from '../../translate/stream.ts'
import { PassThroughError } from '../../upstream/router.ts'
import { validateBody } from '../validate.ts'
import type { FrontDoor, StreamWriter } from './types.ts'

type Json = Record<string, unknown>

/** One Responses request as the door needs it: who asks, what it continues, where its state goes. */
export interface ResponsesTurn {
  readonly service: ResponsesService
  readonly consumerId: string
  /** What previous_response_id resolved to (null without one). */
  readonly previous: Continuation | null
  readonly now: () => number
}

const ITEM_PREFIX: Record<string, string> = { message: 'msg', function_call: 'fc', function_call_output: 'fco', reasoning: 'rs', custom_tool_call: 'ctc', custom_tool_call_output: 'ctco' }

/**
 * OpenAI's Responses API (`POST /v1/responses`) in front of any backend, made per request (it carries the
 * conversation it continues and writes the answer to the store). Translated backends get the hub request built
 * from the stored conversation plus the new input (responses-to-openai.ts), and their answers and streams are
 * rendered back as Responses; a backend that speaks Responses natively gets the client's body (passthrough) and
 * its bytes come back untouched, the gateway recording only which backend keeps the state.
 */
export function responsesDoor(turn: ResponsesTurn): FrontDoor {
  let frame: ResponseFrame | null = null
  let input: Json[] = []
  let request: Json = {}
  let backendId: string | null = null
  let finished: { response: Json; output: Json[] } | null = null
  let nativeId: string | null = null
  let persisted = false

  const persist = () => {
    if (persisted || request.store === false || frame === null) return
    const now = turn.now()
    const previousId = typeof request.previous_response_id === 'string' ? request.previous_response_id : null
    if (nativeId !== null && backendId !== null) {
      persisted = true
      turn.service.save({ id: nativeId, consumerId: turn.consumerId, previousId, backendId, model: frame.model, createdAt: now, expiresAt: now + turn.service.retention, input: [], output: [], response: {} })
    } else if (finished !== null) {
      persisted = true
      turn.service.save({ id: frame.id, consumerId: turn.consumerId, previousId, backendId: null, model: frame.model, createdAt: now, expiresAt: now + turn.service.retention, input, output: finished.output, response: finished.response })
    }
  }

  return {
    schema: 'responses',
    parse(_operation, body, modelFromPath, _headers, ceilings) {
      if (!body || typeof body !== 'object' || Array.isArray(body)) throw new GatewayError(GW_ERR.INVALID_REQUEST, 'The request body must be a JSON object.')
      const b = { ...(body as Json) }
      if (modelFromPath !== null && (typeof b.model !== 'string' || b.model === '')) b.model = modelFromPath
      if (b.previous_response_id !== undefined && b.previous_response_id !== null && typeof b.previous_response_id !== 'string') {
        throw new GatewayError(GW_ERR.INVALID_REQUEST, "Invalid type for 'previous_response_id': expected a string.", { param: 'previous_response_id' })
      }
      if (b.store !== undefined && b.store !== null && typeof b.store !== 'boolean') throw new GatewayError(GW_ERR.INVALID_REQUEST, "Invalid type for 'store': expected a boolean.", { param: 'store' })
      const history = turn.previous?.kind === 'gateway' ? turn.previous.items : []
      const parsed = responsesRequestToHub(b, history)
      // The kernel's own checks and ceilings (max_output_tokens) on what the request became.
      validateBody('chat.completions', parsed.hub, null, ceilings)
      const base = randomBytes(8).toString('hex')
      request = b
      input = parsed.input.map((it, i) => (typeof it.id === 'string' ? it : { ...it, id: `${ITEM_PREFIX[String(it.type)] ?? 'item'}_${base}i${i}` }))
      frame = { id: turn.service.newId(), createdAt: Math.floor(turn.now() / 1000), model: b.model as string, request: b, tools: parsed.tools, itemBase: base }
      // A backend with its own Responses state gets the client's body; a conversation the gateway kept goes as input.
      let native: Json = b
      if (turn.previous?.kind === 'gateway') {
        native = { ...b, input: [...nativeHistory(history), ...parsed.input] }
        delete native.previous_response_id
      }
      return {
        model: b.model as string,
        body: parsed.hub,
        stream: b.stream === true,
        // The usage chunk is what response.completed's usage is made of: always relayed to the encoder.
        clientWantsStreamUsage: true,
        client: { schema: 'responses', body: native, omitted: parsed.omitted, ...(turn.previous?.kind === 'native' ? { backend: turn.previous.backendId } : {}) },
      }
    },
    json(result) {
      if (result.native?.schema === 'responses' && !result.modified) {
        nativeId = typeof result.body.id === 'string' ? result.body.id : null
        return result.native.text
      }
      const out = hubToResponseOutput(result.body, frame!)
      const stored = responseObject(frame!, out.status, out.output, out.usage, out.incomplete)
      finished = { response: stored, output: out.output }
      return JSON.stringify({ ...stored, output: clientOutput(out.output, request) })
    },
    streamWriter(): StreamWriter {
      const encoder = new ResponsesStreamEncoder(frame!, (r) => {
        finished = r
        persist()
      })
      let passthrough = false
      return {
        frame(f, json) {
          if (isPassthroughFrame(f)) {
            passthrough = true
            if (nativeId === null && f.native.includes('"response.created"')) {
              nativeId = /"id":"([^"]{1,256})"/.exec(f.native)?.[1] ?? null
              persist()
            }
            return f.native
          }
          if (passthrough || json === null) return ''
          return encoder.chunk(json)
        },
        end: () => (passthrough ? '' : encoder.end()),
        error: (err) => encoder.error(err),
      }
    },
    errorBody(err) {
      if (err instanceof PassThroughError) return err.native?.body ?? err.body
      return err.toJSON()
    },
    headers(h) {
      backendId = h['x-sluice-backend'] ?? backendId
      // A complete JSON answer is known by now (json() ran); a stream's state is written as its events pass.
      persist()
      return h
    },
  }
}

/**
 * The gateway's stored items as a native Responses backend takes them: without the gateway's item ids (the backend
 * does not know them) and without reasoning items it cannot read (the gateway's own encrypted_content).
 */
function nativeHistory(items: readonly Json[]): Json[] {
  const out: Json[] = []
  for (const it of items) {
    if (it.type === 'reasoning' && (typeof it.encrypted_content !== 'string' || decodeReasoning(it.encrypted_content) !== null)) continue
    const { id: _id, status: _status, ...rest } = it
    out.push(rest)
  }
  return out
}
