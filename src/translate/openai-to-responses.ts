/**
 * Hub ⇄ a backend that natively speaks OpenAI's Responses API (openai, azure-openai, the mock, Responses-capable
 * presets). Used when a Responses client reaches such a backend: the client's own body goes up (passthrough, the
 * backend keeps its state), and the backend's answer and events are decoded to hub shapes only so the kernel can
 * account for them (usage, generated text, time to first token) exactly as for chat completions.
 */
import type { HubFinishReason } from './hub.ts'
import { hubChunk } from './hub.ts'
import type { BackendCodec, StreamDecoder, TranslateContext, TranslatedError } from './types.ts'

type Json = Record<string, unknown>
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0)

/** Responses usage → hub usage. */
export function hubUsageFromResponses(u: unknown): Json | undefined {
  if (!u || typeof u !== 'object') return undefined
  const x = u as Json
  const input = num(x.input_tokens)
  const output = num(x.output_tokens)
  return {
    prompt_tokens: input,
    completion_tokens: output,
    total_tokens: num(x.total_tokens) || input + output,
    prompt_tokens_details: { cached_tokens: num((x.input_tokens_details as Json | undefined)?.cached_tokens) },
    completion_tokens_details: { reasoning_tokens: num((x.output_tokens_details as Json | undefined)?.reasoning_tokens) },
  }
}

function finishOf(r: Json, calls: boolean): HubFinishReason {
  if (r.status === 'incomplete') return (r.incomplete_details as Json | undefined)?.reason === 'content_filter' ? 'content_filter' : 'length'
  return calls ? 'tool_calls' : 'stop'
}

/** A Responses `response` → a hub `chat.completion` (text, reasoning text, function calls, usage). */
function responseToHub(r: Json, tc: TranslateContext): Json {
  let text = ''
  let reasoning = ''
  const calls: Json[] = []
  for (const it of (Array.isArray(r.output) ? r.output : []) as Json[]) {
    if (it?.type === 'message' && Array.isArray(it.content)) {
      for (const p of it.content as Json[]) text += typeof p.text === 'string' ? p.text : typeof p.refusal === 'string' ? p.refusal : ''
    } else if (it?.type === 'reasoning' && Array.isArray(it.summary)) {
      for (const s of it.summary as Json[]) reasoning += String(s?.text ?? '')
    } else if (it?.type === 'function_call') {
      calls.push({ id: it.call_id, type: 'function', function: { name: it.name, arguments: it.arguments } })
    } else if (it?.type === 'custom_tool_call') {
      calls.push({ id: it.call_id, type: 'function', function: { name: it.name, arguments: JSON.stringify({ input: it.input }) } })
    }
  }
  const message: Json = { role: 'assistant', content: text }
  if (reasoning) message.reasoning_content = reasoning
  if (calls.length) message.tool_calls = calls
  return {
    id: typeof r.id === 'string' ? r.id : `chatcmpl-${tc.requestId}`,
    object: 'chat.completion',
    created: typeof r.created_at === 'number' ? r.created_at : tc.created,
    model: tc.publicModel,
    choices: [{ index: 0, message, finish_reason: finishOf(r, calls.length > 0) }],
    usage: hubUsageFromResponses(r.usage),
  }
}

/** Responses events → hub chunks: text, reasoning and argument deltas as they come, finish and usage at the end. */
class ResponsesEventDecoder implements StreamDecoder {
  private started = false
  private calls = new Map<string, number>()
  private ended = false
  constructor(private readonly tc: TranslateContext) {}

  private chunk(delta: Json | null, finish: HubFinishReason | null = null, usage?: Json): Json {
    const choice = delta === null ? null : { index: 0, delta, finish_reason: finish }
    return hubChunk(`chatcmpl-${this.tc.requestId}`, this.tc.publicModel, this.tc.created, choice, usage)
  }

  push(event: { data: string }): readonly Json[] {
    if (this.ended || event.data.charCodeAt(0) !== 123) return []
    let e: Json
    try { e = JSON.parse(event.data) as Json } catch { return [] }
    const out: Json[] = []
    if (!this.started) {
      this.started = true
      out.push(this.chunk({ role: 'assistant', content: '' }))
    }
    switch (e.type) {
      case 'response.output_text.delta':
        if (typeof e.delta === 'string') out.push(this.chunk({ content: e.delta }))
        break
      case 'response.reasoning_summary_text.delta':
      case 'response.reasoning_text.delta':
        if (typeof e.delta === 'string') out.push(this.chunk({ reasoning_content: e.delta }))
        break
      case 'response.output_item.added': {
        const it = (e.item ?? {}) as Json
        if (it.type === 'function_call' || it.type === 'custom_tool_call') {
          const index = this.calls.size
          this.calls.set(String(it.id ?? index), index)
          out.push(this.chunk({ tool_calls: [{ index, id: it.call_id, type: 'function', function: { name: it.name, arguments: '' } }] }))
        }
        break
      }
      case 'response.function_call_arguments.delta':
      case 'response.custom_tool_call_input.delta': {
        const index = this.calls.get(String(e.item_id)) ?? 0
        if (typeof e.delta === 'string') out.push(this.chunk({ tool_calls: [{ index, function: { arguments: e.delta } }] }))
        break
      }
      case 'response.completed':
      case 'response.incomplete':
      case 'response.failed': {
        const r = (e.response ?? {}) as Json
        this.ended = true
        out.push(this.chunk({}, finishOf(r, this.calls.size > 0)))
        const usage = hubUsageFromResponses(r.usage)
        if (usage) out.push(this.chunk(null, null, usage))
        break
      }
    }
    return out
  }

  end(): readonly Json[] {
    return []
  }
}

export const responsesCodec: BackendCodec = {
  schema: 'responses',
  /**
   * A hub request as a Responses one. The router only picks this codec for a Responses client, whose own body
   * goes up (`native`); this direction exists so the codec is whole (a chat request would go as this body).
   */
  request(hub, tc) {
    const input: Json[] = []
    let instructions = ''
    for (const m of (hub.messages ?? []) as Json[]) {
      const text = typeof m.content === 'string' ? m.content : Array.isArray(m.content) ? (m.content as Json[]).map((p) => String(p.text ?? '')).join('') : ''
      if (m.role === 'system' || m.role === 'developer') instructions += (instructions ? '\n' : '') + text
      else if (m.role === 'tool') input.push({ type: 'function_call_output', call_id: m.tool_call_id, output: text })
      else {
        if (text) input.push({ type: 'message', role: m.role, content: text })
        for (const c of (m.tool_calls ?? []) as Json[]) {
          const fn = (c.function ?? {}) as Json
          input.push({ type: 'function_call', call_id: c.id, name: fn.name, arguments: fn.arguments })
        }
      }
    }
    const body: Json = { model: tc.upstreamModel, input, store: false }
    if (instructions) body.instructions = instructions
    if (hub.stream === true) body.stream = true
    const max = hub.max_completion_tokens ?? hub.max_tokens
    if (max != null) body.max_output_tokens = max
    if (Array.isArray(hub.tools)) body.tools = (hub.tools as Json[]).map((t) => ({ type: 'function', ...(t.function as Json) }))
    for (const k of ['temperature', 'top_p', 'user', 'prompt_cache_key', 'parallel_tool_calls']) if (hub[k] !== undefined) body[k] = hub[k]
    return { body, omitted: [] }
  },
  response: (body, tc) => responseToHub(body, tc),
  decoder: (tc) => new ResponsesEventDecoder(tc),
  error(status, body): TranslatedError {
    const e = (body.error ?? {}) as Json
    return {
      message: typeof e.message === 'string' ? e.message : `The backend answered ${status}.`,
      type: typeof e.type === 'string' ? e.type : status >= 500 ? 'api_error' : 'invalid_request_error',
      code: typeof e.code === 'string' ? e.code : null,
      param: typeof e.param === 'string' ? e.param : null,
      retriable: false,
    }
  },
  native: (clientBody, tc) => ({ ...clientBody, model: tc.upstreamModel }),
}
