import { GW_ERR, type ErrorSpec } from '../core/errors.ts'
import { UpstreamFailure } from '../upstream/failure.ts'
import { EXCEPTION_PREFIX, ERROR_EVENT, MALFORMED_EVENT } from './helpers/aws-eventstream.ts'
import { hubChunk, hubUsage, type HubFinishReason } from './hub.ts'
import type { StreamDecoder, TranslateContext, UpstreamEvent } from './types.ts'

/**
 * ConverseStream events (decoded from the binary event stream by helpers/aws-eventstream.ts) → hub chunks,
 * one event at a time: messageStart → the role chunk; contentBlockStart(toolUse) → a tool call's first
 * fragment (id, name); contentBlockDelta → text, tool-call argument pieces or reasoning; contentBlockStop of
 * a reasoning block → its thinking block with the signature; messageStop → finish_reason; metadata → usage
 * (sent after the finish chunk, whichever of the two comes first). In-stream exceptions and malformed
 * events are UpstreamFailures: before the first content the kernel fails over, after it the client gets
 * the kernel's error event.
 */

type Json = Record<string, unknown>

/** In-stream exceptions (`:exception-type`) as the gateway's failures: [error spec, upstream status]. */
const STREAM_EXCEPTIONS: Record<string, readonly [ErrorSpec, number]> = {
  throttlingException: [GW_ERR.RATE_LIMIT_EXCEEDED, 429],
  serviceUnavailableException: [GW_ERR.BAD_GATEWAY, 503],
  modelStreamErrorException: [GW_ERR.BAD_GATEWAY, 502],
  internalServerException: [GW_ERR.BAD_GATEWAY, 500],
  modelTimeoutException: [GW_ERR.GATEWAY_TIMEOUT, 504],
  validationException: [GW_ERR.INVALID_REQUEST, 400],
}

export const STOP_REASON: Record<string, HubFinishReason> = {
  end_turn: 'stop',
  stop_sequence: 'stop',
  max_tokens: 'length',
  model_context_window_exceeded: 'length',
  tool_use: 'tool_calls',
  guardrail_intervened: 'content_filter',
  content_filtered: 'content_filter',
}

export function finishReason(stopReason: unknown): HubFinishReason {
  return (typeof stopReason === 'string' && STOP_REASON[stopReason]) || 'stop'
}

/** Converse usage → hub usage: Bedrock's inputTokens leaves cache reads and writes out; the hub's prompt_tokens counts them. */
export function usageOf(raw: unknown): Json {
  const u = (raw && typeof raw === 'object' ? raw : {}) as Json
  const n = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0)
  const cacheRead = n(u.cacheReadInputTokens)
  const cacheWrite = n(u.cacheWriteInputTokens)
  return hubUsage({ input: n(u.inputTokens) + cacheRead + cacheWrite, output: n(u.outputTokens), cacheRead, cacheWrite })
}

interface ToolBlock { readonly index: number }
interface ReasoningBlock { text: string; signature: string | undefined; redacted: string | undefined }

class BedrockStreamDecoder implements StreamDecoder {
  private readonly id: string
  private readonly backend: string
  private started = false
  private finished = false
  private usage: Json | null = null
  private usageSent = false
  private readonly tools = new Map<number, ToolBlock>()
  private readonly reasoning = new Map<number, ReasoningBlock>()

  constructor(private readonly tc: TranslateContext) {
    this.id = `chatcmpl-${tc.requestId}`
    this.backend = tc.backendId ?? 'bedrock'
  }

  private chunk(delta: Json | null, finish: string | null = null): Json {
    return hubChunk(this.id, this.tc.publicModel, this.tc.created, delta === null && finish === null ? null : { index: 0, delta: delta ?? {}, logprobs: null, finish_reason: finish })
  }

  private fail(spec: ErrorSpec, status: number, message: string): never {
    throw new UpstreamFailure(spec, message, 'status', this.backend, status)
  }

  private malformed(detail: string): never {
    this.fail(GW_ERR.BAD_GATEWAY, 502, `Backend "${this.backend}" sent a malformed event stream (${detail.slice(0, 160)}).`)
  }

  push(event: UpstreamEvent): readonly Json[] {
    const type = event.event ?? ''
    if (type === MALFORMED_EVENT) this.malformed(event.data)
    if (type.startsWith(EXCEPTION_PREFIX) || type.startsWith(ERROR_EVENT)) this.exception(type, event.data)
    let data: Json
    try {
      const parsed: unknown = JSON.parse(event.data)
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object')
      data = parsed as Json
    } catch {
      this.malformed(`the payload of a ${type.slice(0, 40)} event is not a JSON object`)
    }
    const out: Json[] = []
    if (!this.started && type !== 'metadata') {
      this.started = true
      out.push(this.chunk({ role: 'assistant', content: '' }))
    }
    switch (type) {
      case 'messageStart':
        break
      case 'contentBlockStart': {
        const idx = blockIndex(data)
        const tool = (data.start as Json | undefined)?.toolUse as Json | undefined
        if (tool) {
          const t: ToolBlock = { index: this.tools.size }
          this.tools.set(idx, t)
          out.push(this.chunk({ tool_calls: [{ index: t.index, id: String(tool.toolUseId ?? ''), type: 'function', function: { name: String(tool.name ?? ''), arguments: '' } }] }))
        }
        break
      }
      case 'contentBlockDelta':
        this.delta(data, out)
        break
      case 'contentBlockStop': {
        const idx = blockIndex(data)
        const r = this.reasoning.get(idx)
        if (r) {
          this.reasoning.delete(idx)
          const block = r.redacted !== undefined ? { type: 'redacted_thinking', data: r.redacted } : r.signature !== undefined ? { type: 'thinking', thinking: r.text, signature: r.signature } : { type: 'thinking', thinking: r.text }
          out.push(this.chunk({ thinking_blocks: [block] }))
        }
        break
      }
      case 'messageStop':
        this.finished = true
        out.push(this.chunk({}, finishReason(data.stopReason)))
        if (this.usage && !this.usageSent) out.push(this.usageChunk())
        break
      case 'metadata':
        this.usage = usageOf(data.usage)
        if (this.finished && !this.usageSent) out.push(this.usageChunk())
        break
      default:
        // Event types added after this build carry nothing the hub has: skipped.
        break
    }
    return out
  }

  private delta(data: Json, out: Json[]): void {
    const idx = blockIndex(data)
    const d = (data.delta ?? {}) as Json
    if (typeof d.text === 'string') {
      if (d.text !== '') out.push(this.chunk({ content: d.text }))
      return
    }
    const toolUse = d.toolUse as Json | undefined
    if (toolUse) {
      const t = this.tools.get(idx)
      if (!t) this.malformed('a toolUse delta for a block that did not start as a tool use')
      if (typeof toolUse.input === 'string' && toolUse.input !== '') out.push(this.chunk({ tool_calls: [{ index: t!.index, function: { arguments: toolUse.input } }] }))
      return
    }
    const rc = d.reasoningContent as Json | undefined
    if (rc) {
      let r = this.reasoning.get(idx)
      if (!r) this.reasoning.set(idx, (r = { text: '', signature: undefined, redacted: undefined }))
      if (typeof rc.text === 'string') {
        r.text += rc.text
        if (rc.text !== '') out.push(this.chunk({ reasoning_content: rc.text }))
      }
      if (typeof rc.signature === 'string') r.signature = (r.signature ?? '') + rc.signature
      if (typeof rc.redactedContent === 'string') r.redacted = (r.redacted ?? '') + rc.redactedContent
    }
  }

  private usageChunk(): Json {
    this.usageSent = true
    return hubChunk(this.id, this.tc.publicModel, this.tc.created, null, this.usage!)
  }

  private exception(type: string, data: string): never {
    const name = type.startsWith(EXCEPTION_PREFIX) ? type.slice(EXCEPTION_PREFIX.length) : type.slice(ERROR_EVENT.length)
    let message = ''
    try {
      const j = JSON.parse(data) as Json
      if (typeof j.message === 'string') message = j.message
    } catch { /* the name says enough */ }
    const [spec, status] = STREAM_EXCEPTIONS[name] ?? [GW_ERR.BAD_GATEWAY, 502]
    const what = spec === GW_ERR.INVALID_REQUEST && message ? message.slice(0, 300) : `Backend "${this.backend}" reported ${name.slice(0, 60)} in the stream.`
    this.fail(spec, status, what)
  }

  end(): readonly Json[] {
    if (!this.finished) this.malformed('the stream ended before messageStop')
    if (this.usage && !this.usageSent) return [this.usageChunk()]
    return []
  }
}

function blockIndex(data: Json): number {
  const i = data.contentBlockIndex
  return typeof i === 'number' && Number.isInteger(i) && i >= 0 ? i : 0
}

export function bedrockDecoder(tc: TranslateContext): StreamDecoder {
  return new BedrockStreamDecoder(tc)
}
