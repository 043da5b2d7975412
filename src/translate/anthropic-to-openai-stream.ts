/**
 * Hub stream chunks → Anthropic Messages stream events, chunk by chunk as they arrive, with Anthropic's exact
 * framing: `message_start`, `ping`, then per content block `content_block_start` / `_delta` / `_stop` (one block
 * open at a time, indexes from 0), `message_delta` (stop reason and the final usage), `message_stop`.
 * Thinking comes as `thinking_delta` then `signature_delta`; tool calls as `tool_use` blocks fed by
 * `input_json_delta`. The hub's finish chunk closes the open block; its usage chunk (or the end) ends the message.
 */
import type { GatewayError } from '../core/errors.ts'
import type { ThinkingBlock } from './hub.ts'
import { anthropicId, anthropicUsageFromHub, stopReasonFromFinish } from './helpers/anthropic.ts'

type Json = Record<string, unknown>

export function anthropicEvent(type: string, payload: Json): string {
  return `event: ${type}\ndata: ${JSON.stringify({ type, ...payload })}\n\n`
}

export class AnthropicStreamEncoder {
  private started = false
  private ended = false
  /** The open block: its Anthropic index and kind; tool blocks remember their hub tool index. */
  private open: { index: number; kind: 'text' | 'thinking' | 'tool'; tool: number } | null = null
  private next = 0
  private stopReason: string | null = null

  constructor(private readonly model: string, private readonly requestId: string) {}

  /** The events for one hub chunk ('' when it carries nothing Anthropic shows). */
  chunk(json: Json): string {
    if (this.ended) return ''
    let out = this.started ? '' : this.start()
    const choices = json.choices
    if (Array.isArray(choices) && choices.length) {
      const c = choices[0] as Json
      const d = (c.delta ?? {}) as Json
      if (typeof d.reasoning_content === 'string' && d.reasoning_content !== '') {
        out += this.ensure('thinking', -1, { type: 'thinking', thinking: '', signature: '' })
        out += this.delta({ type: 'thinking_delta', thinking: d.reasoning_content })
      }
      if (Array.isArray(d.thinking_blocks)) for (const b of d.thinking_blocks as ThinkingBlock[]) out += this.thinkingBlock(b)
      const text = typeof d.content === 'string' ? d.content : typeof d.refusal === 'string' ? d.refusal : ''
      if (text !== '') {
        out += this.ensure('text', -1, { type: 'text', text: '' })
        out += this.delta({ type: 'text_delta', text })
      }
      if (Array.isArray(d.tool_calls)) for (const t of d.tool_calls as Json[]) out += this.toolCall(t)
      if (c.finish_reason != null) {
        out += this.close()
        this.stopReason = stopReasonFromFinish(c.finish_reason)
      }
    }
    if (json.usage && typeof json.usage === 'object' && Array.isArray(choices) && choices.length === 0) out += this.finish(json.usage)
    return out
  }

  /** What is still owed when the hub stream ends (a backend that reported no usage). */
  end(): string {
    if (this.ended) return ''
    return (this.started ? '' : this.start()) + this.finish(null)
  }

  /** Anthropic's in-stream error event, after which the stream ends. */
  error(err: GatewayError): string {
    this.ended = true
    return anthropicEvent('error', { error: err.toAnthropicJSON().error })
  }

  private start(): string {
    this.started = true
    const message = {
      id: anthropicId('msg', this.requestId),
      type: 'message',
      role: 'assistant',
      model: this.model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      // The hub learns usage at the end; the final figures come in message_delta (the SDKs take them from there).
      usage: { input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
    }
    return anthropicEvent('message_start', { message }) + anthropicEvent('ping', {})
  }

  private ensure(kind: 'text' | 'thinking' | 'tool', tool: number, block: Json): string {
    if (this.open && this.open.kind === kind && this.open.tool === tool) return ''
    const out = this.close()
    this.open = { index: this.next++, kind, tool }
    return out + anthropicEvent('content_block_start', { index: this.open.index, content_block: block })
  }

  private delta(delta: Json): string {
    return anthropicEvent('content_block_delta', { index: this.open!.index, delta })
  }

  private close(): string {
    if (!this.open) return ''
    const out = anthropicEvent('content_block_stop', { index: this.open.index })
    this.open = null
    return out
  }

  private thinkingBlock(b: ThinkingBlock): string {
    if (b.type === 'redacted_thinking') {
      const out = this.close()
      const index = this.next++
      return out + anthropicEvent('content_block_start', { index, content_block: { type: 'redacted_thinking', data: b.data ?? '' } }) + anthropicEvent('content_block_stop', { index })
    }
    // The block's text was streamed as reasoning deltas already; a block that arrives whole (no deltas) is sent now.
    let out = ''
    if (!this.open || this.open.kind !== 'thinking') {
      out += this.ensure('thinking', -1, { type: 'thinking', thinking: '', signature: '' })
      if (b.thinking) out += this.delta({ type: 'thinking_delta', thinking: b.thinking })
    }
    if (b.signature) out += this.delta({ type: 'signature_delta', signature: b.signature })
    return out + this.close()
  }

  private toolCall(t: Json): string {
    const index = typeof t.index === 'number' ? t.index : 0
    const fn = (t.function ?? {}) as Json
    let out = ''
    if (!this.open || this.open.kind !== 'tool' || this.open.tool !== index) {
      out += this.ensure('tool', index, { type: 'tool_use', id: typeof t.id === 'string' ? t.id : anthropicId('toolu', `${this.requestId}${index}`), name: fn.name ?? '', input: {} })
    }
    const args = fn.arguments
    if (typeof args === 'string' && args !== '') out += this.delta({ type: 'input_json_delta', partial_json: args })
    return out
  }

  private finish(usage: unknown): string {
    this.ended = true
    let out = this.close()
    const u = anthropicUsageFromHub(usage)
    out += anthropicEvent('message_delta', { delta: { stop_reason: this.stopReason ?? 'end_turn', stop_sequence: null }, usage: u })
    return out + anthropicEvent('message_stop', {})
  }
}

