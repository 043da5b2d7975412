/**
 * The mappings both Anthropic codecs share (the backend side, openai-to-anthropic.ts, and the front-door side,
 * anthropic-to-openai.ts): stop reasons, usage, tool choice, images. One place, so the two directions stay
 * each other's inverse.
 */
import type { HubFinishReason } from '../hub.ts'
import { hubUsage } from '../hub.ts'

type Json = Record<string, unknown>
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0)

/** Anthropic `stop_reason` → hub `finish_reason`. */
export function finishFromStopReason(reason: unknown): HubFinishReason {
  switch (reason) {
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length'
    case 'tool_use':
      return 'tool_calls'
    case 'refusal':
      return 'content_filter'
    default: // end_turn, stop_sequence, pause_turn
      return 'stop'
  }
}

/** Hub `finish_reason` → Anthropic `stop_reason`. */
export function stopReasonFromFinish(finish: unknown): string {
  switch (finish) {
    case 'length':
      return 'max_tokens'
    case 'tool_calls':
    case 'function_call':
      return 'tool_use'
    case 'content_filter':
      return 'refusal'
    default:
      return 'end_turn'
  }
}

/** The counts of an Anthropic `usage` object (input_tokens excludes cache reads and writes there). */
export interface AnthropicCounts {
  input: number
  output: number
  cacheRead: number
  cacheWrite: number
}

export function countsOf(usage: unknown, into?: AnthropicCounts): AnthropicCounts {
  const c = into ?? { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 }
  if (!usage || typeof usage !== 'object') return c
  const u = usage as Json
  if (u.input_tokens != null) c.input = num(u.input_tokens)
  if (u.output_tokens != null) c.output = num(u.output_tokens)
  if (u.cache_read_input_tokens != null) c.cacheRead = num(u.cache_read_input_tokens)
  if (u.cache_creation_input_tokens != null) c.cacheWrite = num(u.cache_creation_input_tokens)
  return c
}

/** Anthropic counts → hub usage: `prompt_tokens` = input + cache reads + cache writes (all input, OpenAI's meaning). */
export function hubUsageFromCounts(c: AnthropicCounts): Json {
  return hubUsage({ input: c.input + c.cacheRead + c.cacheWrite, output: c.output, cacheRead: c.cacheRead, cacheWrite: c.cacheWrite })
}

/** Hub usage → Anthropic usage (the inverse of hubUsageFromCounts). */
export function anthropicUsageFromHub(usage: unknown): { input_tokens: number; output_tokens: number; cache_creation_input_tokens: number; cache_read_input_tokens: number } {
  const u = (usage && typeof usage === 'object' ? usage : {}) as Json
  const details = (u.prompt_tokens_details ?? {}) as Json
  const read = num(details.cached_tokens)
  const write = num(details.cache_write_tokens)
  return {
    input_tokens: Math.max(0, num(u.prompt_tokens) - read - write),
    output_tokens: num(u.completion_tokens),
    cache_creation_input_tokens: write,
    cache_read_input_tokens: read,
  }
}

/** `data:<media type>;base64,<data>` → its parts, or null for any other URL. */
export function parseDataUrl(url: string): { mediaType: string; data: string } | null {
  const m = /^data:([^;,]+);base64,(.*)$/s.exec(url)
  return m ? { mediaType: m[1]!, data: m[2]! } : null
}

/** A fresh Anthropic-style id (`msg_…`, `toolu_…`) from the gateway's request id. */
export function anthropicId(prefix: 'msg' | 'toolu', seed: string): string {
  return `${prefix}_${seed.replace(/[^A-Za-z0-9]/g, '').slice(0, 24) || 'sluice'}`
}
