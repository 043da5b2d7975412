/**
 * Hub stream chunks → OpenAI Responses stream events, chunk by chunk as they arrive, with the real sequence:
 * `response.created`, `response.in_progress`, then per output item `response.output_item.added`, its content
 * (`response.content_part.added` / `response.output_text.delta` / `.done` / `response.content_part.done` for a
 * message; `response.reasoning_summary_part.added` / `response.reasoning_summary_text.delta` / `.done` /
 * `response.reasoning_summary_part.done` for reasoning; `response.function_call_arguments.delta` / `.done` for a
 * call), `response.output_item.done`, and `response.completed` (or `response.incomplete`) with the usage.
 * Every event carries `sequence_number`, from 0. One item is open at a time, as OpenAI streams them.
 */
import type { GatewayError } from '../core/errors.ts'
import type { ThinkingBlock } from './hub.ts'
import { callItem, clientOutput, itemId, messageItem, reasoningItem, responseObject, responsesUsage, statusOf, type ResponseFrame } from './responses-to-openai.ts'

type Json = Record<string, unknown>

interface OpenItem {
  readonly kind: 'message' | 'reasoning' | 'call'
  readonly index: number
  readonly id: string
  /** Hub tool index (calls). */
  readonly tool: number
  /** Its number among the response's items (what its id is made from). */
  readonly n: number
  text: string
  callId: string
  name: string
  blocks: ThinkingBlock[]
}

/** What the finished stream produced, for the store (the complete `response` object, output as stored). */
export interface FinishedResponse {
  readonly response: Json
  readonly output: Json[]
}

export class ResponsesStreamEncoder {
  private seq = 0
  private started = false
  private ended = false
  private open: OpenItem | null = null
  private readonly output: Json[] = []
  private finish: unknown = null
  private n = 0

  /** `onFinished` hears the complete response once, before its final event is written. */
  constructor(private readonly frame: ResponseFrame, private readonly onFinished: (r: FinishedResponse) => void) {}

  /** The events for one hub chunk ('' when it carries nothing the Responses stream shows). */
  chunk(json: Json): string {
    if (this.ended) return ''
    let out = this.started ? '' : this.start()
    const choices = json.choices
    if (Array.isArray(choices) && choices.length) {
      const c = choices[0] as Json
      const d = (c.delta ?? {}) as Json
      if (typeof d.reasoning_content === 'string' && d.reasoning_content !== '') {
        out += this.ensure('reasoning', -1)
        this.open!.text += d.reasoning_content
        out += this.event('response.reasoning_summary_text.delta', { item_id: this.open!.id, output_index: this.open!.index, summary_index: 0, delta: d.reasoning_content })
      }
      if (Array.isArray(d.thinking_blocks)) {
        out += this.ensure('reasoning', -1)
        this.open!.blocks.push(...(d.thinking_blocks as ThinkingBlock[]))
        // A block that arrived whole (no deltas before it) still shows its text.
        for (const b of d.thinking_blocks as ThinkingBlock[]) {
          if (b.thinking && !this.open!.text.endsWith(b.thinking)) {
            this.open!.text += b.thinking
            out += this.event('response.reasoning_summary_text.delta', { item_id: this.open!.id, output_index: this.open!.index, summary_index: 0, delta: b.thinking })
          }
        }
      }
      const text = typeof d.content === 'string' ? d.content : typeof d.refusal === 'string' ? d.refusal : ''
      if (text !== '') {
        out += this.ensure('message', -1)
        this.open!.text += text
        out += this.event('response.output_text.delta', { item_id: this.open!.id, output_index: this.open!.index, content_index: 0, delta: text, logprobs: [] })
      }
      if (Array.isArray(d.tool_calls)) for (const t of d.tool_calls as Json[]) out += this.toolCall(t)
      if (c.finish_reason != null) this.finish = c.finish_reason
    }
    if (json.usage && typeof json.usage === 'object' && Array.isArray(choices) && choices.length === 0) out += this.complete(json.usage)
    return out
  }

  /** What is still owed when the hub stream ends (a backend that reported no usage). */
  end(): string {
    if (this.ended) return ''
    return (this.started ? '' : this.start()) + this.complete(null)
  }

  /** The Responses stream's `error` event (the SDK raises it as an APIError), after which the stream ends. */
  error(err: GatewayError): string {
    this.ended = true
    return this.event('error', { code: err.code, message: err.message, param: err.param })
  }

  private event(type: string, payload: Json): string {
    return `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: this.seq++, ...payload })}\n\n`
  }

  private start(): string {
    this.started = true
    const r = responseObject(this.frame, 'in_progress', [], null)
    return this.event('response.created', { response: r }) + this.event('response.in_progress', { response: r })
  }

  private ensure(kind: OpenItem['kind'], tool: number): string {
    if (this.open && this.open.kind === kind && this.open.tool === tool) return ''
    let out = this.close()
    const n = this.n++
    const id = kind === 'message' ? itemId(this.frame, 'msg', n) : kind === 'reasoning' ? itemId(this.frame, 'rs', n) : ''
    this.open = { kind, index: this.output.length, id, tool, n, text: '', callId: '', name: '', blocks: [] }
    if (kind === 'message') {
      out += this.event('response.output_item.added', { output_index: this.open.index, item: { id, type: 'message', status: 'in_progress', content: [], role: 'assistant' } })
      out += this.event('response.content_part.added', { item_id: id, output_index: this.open.index, content_index: 0, part: { type: 'output_text', annotations: [], logprobs: [], text: '' } })
    } else if (kind === 'reasoning') {
      out += this.event('response.output_item.added', { output_index: this.open.index, item: { id, type: 'reasoning', summary: [] } })
      out += this.event('response.reasoning_summary_part.added', { item_id: id, output_index: this.open.index, summary_index: 0, part: { type: 'summary_text', text: '' } })
    }
    this.output.push({}) // the slot; filled when the item is done
    return out
  }

  private toolCall(t: Json): string {
    const index = typeof t.index === 'number' ? t.index : 0
    const fn = (t.function ?? {}) as Json
    let out = ''
    if (!this.open || this.open.kind !== 'call' || this.open.tool !== index) {
      out += this.close()
      const n = this.n++
      const callId = typeof t.id === 'string' && t.id !== '' ? t.id : `call_${this.frame.itemBase}${n}`
      const item = callItem(this.frame, n, callId, String(fn.name ?? ''), '', 'in_progress')
      this.open = { kind: 'call', index: this.output.length, id: item.id as string, tool: index, n, text: '', callId, name: String(fn.name ?? ''), blocks: [] }
      this.output.push({})
      out += this.event('response.output_item.added', { output_index: this.open.index, item })
    }
    const args = fn.arguments
    if (typeof args === 'string' && args !== '') {
      this.open!.text += args
      if (this.frame.tools.custom.has(this.open!.name)) return out // a custom tool's input is known when its JSON is whole
      out += this.event('response.function_call_arguments.delta', { item_id: this.open!.id, output_index: this.open!.index, delta: args })
    }
    return out
  }

  private close(): string {
    const o = this.open
    if (!o) return ''
    this.open = null
    let out = ''
    if (o.kind === 'message') {
      const part = { type: 'output_text', annotations: [], logprobs: [], text: o.text }
      out += this.event('response.output_text.done', { item_id: o.id, output_index: o.index, content_index: 0, text: o.text, logprobs: [] })
      out += this.event('response.content_part.done', { item_id: o.id, output_index: o.index, content_index: 0, part })
      this.output[o.index] = messageItem(o.id, o.text, 'completed')
    } else if (o.kind === 'reasoning') {
      out += this.event('response.reasoning_summary_text.done', { item_id: o.id, output_index: o.index, summary_index: 0, text: o.text })
      out += this.event('response.reasoning_summary_part.done', { item_id: o.id, output_index: o.index, summary_index: 0, part: { type: 'summary_text', text: o.text } })
      this.output[o.index] = reasoningItem(o.id, o.text, o.blocks.length ? o.blocks : null)
    } else {
      const item = callItem(this.frame, o.n, o.callId, o.name, o.text, 'completed')
      if (item.type === 'custom_tool_call') {
        out += this.event('response.custom_tool_call_input.delta', { item_id: o.id, output_index: o.index, delta: item.input })
        out += this.event('response.custom_tool_call_input.done', { item_id: o.id, output_index: o.index, input: item.input })
      } else {
        out += this.event('response.function_call_arguments.done', { item_id: o.id, output_index: o.index, name: item.name, arguments: o.text })
      }
      this.output[o.index] = item
    }
    return out + this.event('response.output_item.done', { output_index: o.index, item: clientOutput([this.output[o.index]!], this.frame.request)[0] })
  }

  private complete(usage: unknown): string {
    this.ended = true
    let out = this.close()
    const { status, incomplete } = statusOf(this.finish)
    // An answer with nothing in it is still an (empty) assistant message, as OpenAI sends one.
    if (this.output.length === 0) {
      const id = itemId(this.frame, 'msg', this.n++)
      this.output.push(messageItem(id, '', status))
    }
    const stored = responseObject(this.frame, status, this.output, usage === null ? null : responsesUsage(usage), incomplete)
    this.onFinished({ response: stored, output: this.output })
    const shown = { ...stored, output: clientOutput(this.output, this.frame.request) }
    out += this.event(status === 'completed' ? 'response.completed' : 'response.incomplete', { response: shown })
    return out
  }
}
