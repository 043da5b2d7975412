import { GW_ERR } from '../core/errors.ts'
import { UpstreamFailure } from '../upstream/failure.ts'
import { googleError } from './helpers/google-error.ts'
import { hubChunk, hubUsage, type HubFinishReason } from './hub.ts'
import type { StreamDecoder, TranslateContext, UpstreamEvent } from './types.ts'

/**
 * Gemini `GenerateContentResponse` → hub `chat.completion`, and its stream (one GenerateContentResponse per
 * SSE `data:`) → hub chunks as each arrives. Gemini sends function calls whole: each becomes the two hub
 * tool-call deltas OpenAI streams (id and name, then the arguments), so stream helpers assemble them as
 * usual. Gemini has no call ids: ids are made from the request id, the candidate and the call's position,
 * so the same answer always carries the same ids, and a result is matched back by the id's function name.
 */

type Json = Record<string, unknown>

const FINISH: Readonly<Record<string, HubFinishReason>> = {
  STOP: 'stop',
  MAX_TOKENS: 'length',
  SAFETY: 'content_filter',
  RECITATION: 'content_filter',
  BLOCKLIST: 'content_filter',
  PROHIBITED_CONTENT: 'content_filter',
  SPII: 'content_filter',
  IMAGE_SAFETY: 'content_filter',
  IMAGE_PROHIBITED_CONTENT: 'content_filter',
  LANGUAGE: 'stop',
  OTHER: 'stop',
  MALFORMED_FUNCTION_CALL: 'stop',
  UNEXPECTED_TOOL_CALL: 'stop',
  TOO_MANY_TOOL_CALLS: 'stop',
}

function finishOf(reason: unknown, sawCalls: boolean): HubFinishReason {
  const r = typeof reason === 'string' ? FINISH[reason] ?? 'stop' : 'stop'
  return r === 'stop' && sawCalls ? 'tool_calls' : r
}

export function callId(tc: TranslateContext, candidate: number, position: number): string {
  return `call_${tc.requestId}_${candidate}_${position}`
}

/** usageMetadata → hub usage: completion includes thoughts; prompt includes tool-use prompt tokens and cache reads. */
export function geminiUsage(u: unknown): Record<string, unknown> {
  const m = (u && typeof u === 'object' ? u : {}) as Json
  const n = (k: string) => (typeof m[k] === 'number' ? (m[k] as number) : 0)
  const reasoning = n('thoughtsTokenCount')
  return hubUsage({
    input: n('promptTokenCount') + n('toolUsePromptTokenCount'),
    output: n('candidatesTokenCount') + reasoning,
    cacheRead: n('cachedContentTokenCount'),
    reasoning,
  })
}

function partsOf(candidate: Json): Json[] {
  const content = candidate.content as Json | undefined
  return content && Array.isArray(content.parts) ? (content.parts as Json[]) : []
}

function signatureOf(part: Json): Json | undefined {
  return typeof part.thoughtSignature === 'string' ? { google: { thought_signature: part.thoughtSignature } } : undefined
}

export function geminiResponse(body: Json, tc: TranslateContext): Json {
  const candidates = Array.isArray(body.candidates) ? (body.candidates as Json[]) : []
  const choices = candidates.map((cand, pos) => {
    if (!cand || typeof cand !== 'object') throw malformed('a candidate is not an object')
    const index = typeof cand.index === 'number' ? cand.index : pos
    let text = ''
    let reasoning = ''
    const toolCalls: Json[] = []
    for (const part of partsOf(cand)) {
      if (!part || typeof part !== 'object') throw malformed('a part is not an object')
      if (typeof part.text === 'string') {
        if (part.thought === true) reasoning += part.text
        else text += part.text
      } else if (part.functionCall && typeof part.functionCall === 'object') {
        const fc = part.functionCall as Json
        const call: Json = {
          id: typeof fc.id === 'string' && fc.id ? fc.id : callId(tc, index, toolCalls.length),
          type: 'function',
          function: { name: String(fc.name ?? ''), arguments: JSON.stringify(fc.args ?? {}) },
        }
        const extra = signatureOf(part)
        if (extra) call.extra_content = extra
        toolCalls.push(call)
      }
    }
    const message: Json = { role: 'assistant', content: text === '' && toolCalls.length ? null : text, refusal: null }
    if (reasoning) message.reasoning_content = reasoning
    if (toolCalls.length) message.tool_calls = toolCalls
    return { index, message, logprobs: null, finish_reason: finishOf(cand.finishReason, toolCalls.length > 0) }
  })
  // A prompt blocked by safety settings has no candidates, only promptFeedback.blockReason.
  if (choices.length === 0) {
    choices.push({ index: 0, message: { role: 'assistant', content: null, refusal: null }, logprobs: null, finish_reason: 'content_filter' })
  }
  return {
    id: `chatcmpl-${tc.requestId}`,
    object: 'chat.completion',
    created: tc.created,
    model: tc.publicModel,
    choices,
    usage: geminiUsage(body.usageMetadata),
  }
}

interface ChoiceState {
  started: boolean
  calls: number
  finished: boolean
}

function malformed(what: string): UpstreamFailure {
  return new UpstreamFailure(GW_ERR.BAD_GATEWAY, `The Gemini backend sent a malformed stream event (${what}).`, 'status', 'gemini', 502)
}

export function geminiDecoder(tc: TranslateContext): StreamDecoder {
  const id = `chatcmpl-${tc.requestId}`
  const states = new Map<number, ChoiceState>()
  let usage: unknown
  let sawAny = false
  const chunk = (choice: Json | null, u?: Json) => hubChunk(id, tc.publicModel, tc.created, choice, u)
  const stateOf = (index: number): ChoiceState => {
    let s = states.get(index)
    if (!s) states.set(index, (s = { started: false, calls: 0, finished: false }))
    return s
  }
  /** A delta, with the role on the choice's first one. */
  const delta = (index: number, s: ChoiceState, d: Json): Json => {
    if (!s.started) {
      s.started = true
      d = { role: 'assistant', ...d }
    }
    return chunk({ index, delta: d, logprobs: null, finish_reason: null })
  }
  return {
    push(event: UpstreamEvent) {
      const data = event.data
      if (data === '' || data === '[DONE]') return []
      let body: Json
      try {
        const parsed: unknown = JSON.parse(data)
        if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object')
        body = parsed as Json
      } catch {
        throw malformed('not a JSON object')
      }
      if (body.error && typeof body.error === 'object') {
        const e = googleError(Number((body.error as Json).code) || 500, body)
        const spec = e.type === 'rate_limit_error' ? GW_ERR.RATE_LIMIT_EXCEEDED : GW_ERR.BAD_GATEWAY
        throw new UpstreamFailure(spec, `The Gemini backend reported an error in the stream: ${e.message.slice(0, 300)}`, 'status', 'gemini', Number((body.error as Json).code) || 500, e.retryAfterMs ?? null)
      }
      sawAny = true
      if (body.usageMetadata !== undefined) usage = body.usageMetadata
      const out: Json[] = []
      const candidates = body.candidates
      if (candidates !== undefined && !Array.isArray(candidates)) throw malformed('candidates is not an array')
      const list = (candidates ?? []) as unknown[]
      if (list.length === 0 && body.promptFeedback && (body.promptFeedback as Json).blockReason) {
        const s = stateOf(0)
        if (!s.finished) {
          s.finished = true
          out.push(delta(0, s, {}))
          out.push(chunk({ index: 0, delta: {}, logprobs: null, finish_reason: 'content_filter' }))
        }
      }
      list.forEach((c, pos) => {
        if (!c || typeof c !== 'object') throw malformed('a candidate is not an object')
        const cand = c as Json
        const index = typeof cand.index === 'number' ? cand.index : pos
        const s = stateOf(index)
        for (const part of partsOf(cand)) {
          if (!part || typeof part !== 'object') throw malformed('a part is not an object')
          if (typeof part.text === 'string') {
            if (part.text === '' && part.thoughtSignature === undefined) continue
            out.push(delta(index, s, part.thought === true ? { reasoning_content: part.text } : { content: part.text }))
          } else if (part.functionCall && typeof part.functionCall === 'object') {
            const fc = part.functionCall as Json
            if (typeof fc.name !== 'string') throw malformed('a function call without a name')
            const n = s.calls++
            const head: Json = { index: n, id: typeof fc.id === 'string' && fc.id ? fc.id : callId(tc, index, n), type: 'function', function: { name: fc.name, arguments: '' } }
            const extra = signatureOf(part)
            if (extra) head.extra_content = extra
            out.push(delta(index, s, { tool_calls: [head] }))
            out.push(chunk({ index, delta: { tool_calls: [{ index: n, function: { arguments: JSON.stringify(fc.args ?? {}) } }] }, logprobs: null, finish_reason: null }))
          }
        }
        if (cand.finishReason !== undefined && cand.finishReason !== null && !s.finished) {
          s.finished = true
          if (!s.started) out.push(delta(index, s, { content: '' }))
          out.push(chunk({ index, delta: {}, logprobs: null, finish_reason: finishOf(cand.finishReason, s.calls > 0) }))
        }
      })
      return out
    },
    end() {
      if (!sawAny) return []
      return [chunk(null, geminiUsage(usage))]
    },
  }
}
