/**
 * Hub (OpenAI Chat Completions + extensions) ⇄ Anthropic Messages API, for `type: anthropic` backends.
 * docs/translation.md has the field table; the rules in short:
 * - system/developer messages become `system` blocks (cache_control kept); tool messages become `tool_result`
 *   blocks of the next user turn; assistant `thinking_blocks` go back first, signatures unchanged.
 * - `response_format` (json_object / json_schema) is emulated with one forced tool whose input is the JSON;
 *   the answer's tool input comes back as the message content, so the client sees plain JSON text.
 * - a field Anthropic cannot keep (n > 1, logprobs, penalties, audio…) is a 400 naming it; the safe omissions
 *   (seed, a reasoning text without signature, hosted tools, service hints) are listed in x-sluice-omitted.
 */
import { GatewayError, GW_ERR } from '../core/errors.ts'
import { UpstreamFailure } from '../upstream/failure.ts'
import { hubChunk, type ThinkingBlock } from './hub.ts'
import { countsOf, finishFromStopReason, hubUsageFromCounts, parseDataUrl, type AnthropicCounts } from './helpers/anthropic.ts'
import type { BackendCodec, StreamDecoder, TranslateContext, TranslatedError, TranslatedRequest, UpstreamEvent } from './types.ts'

type Json = Record<string, unknown>

/** The tool Sluice adds to emulate JSON mode; its input is returned as the answer's text. */
export const JSON_TOOL = 'sluice_json_output'
/** Anthropic requires max_tokens; this is used when the hub request gives none. */
export const DEFAULT_MAX_TOKENS = 4096

const cannot = (param: string, why: string) => new GatewayError(GW_ERR.INVALID_REQUEST, `"${param}" cannot be sent to an Anthropic backend: ${why}.`, { param })

/** Hub fields with no Anthropic meaning that are safe to drop (docs/translation.md, "safe omissions"). */
const SAFE_TO_OMIT = new Set(['seed', 'service_tier', 'store', 'prediction', 'web_search_options', 'stream_options', 'prompt_cache_key', 'safety_identifier', 'verbosity'])
/** Hub fields whose meaning Anthropic cannot keep: a 400 naming them. */
const REFUSED = new Set(['logprobs', 'top_logprobs', 'presence_penalty', 'frequency_penalty', 'logit_bias', 'audio', 'modalities', 'functions', 'function_call'])
const HANDLED = new Set(['model', 'messages', 'max_tokens', 'max_completion_tokens', 'temperature', 'top_p', 'top_k', 'stop', 'stream', 'tools', 'tool_choice', 'parallel_tool_calls', 'response_format', 'user', 'metadata', 'thinking', 'reasoning_effort', 'n'])

const EFFORT_BUDGET: Record<string, number> = { minimal: 1024, low: 2048, medium: 8192, high: 16384 }

export function hubToAnthropicRequest(hub: Json, tc: TranslateContext): TranslatedRequest {
  const omitted: string[] = []
  for (const k of Object.keys(hub)) {
    if (HANDLED.has(k) || hub[k] === undefined || hub[k] === null) continue
    if (SAFE_TO_OMIT.has(k)) omitted.push(k)
    else if (REFUSED.has(k)) throw cannot(k, 'the Messages API has no equivalent')
    else throw cannot(k, 'the field is unknown to the translation')
  }
  if (hub.n !== undefined && hub.n !== null && hub.n !== 1) throw cannot('n', 'only one choice per request')
  const body: Json = { model: tc.upstreamModel }
  const { system, messages } = convertMessages(hub.messages as unknown[], omitted)
  if (system.length) body.system = system
  body.messages = messages
  body.max_tokens = (hub.max_completion_tokens ?? hub.max_tokens ?? DEFAULT_MAX_TOKENS) as number
  if (hub.temperature != null) body.temperature = hub.temperature
  if (hub.top_p != null) body.top_p = hub.top_p
  if (hub.top_k != null) body.top_k = hub.top_k
  if (hub.stop != null) body.stop_sequences = typeof hub.stop === 'string' ? [hub.stop] : hub.stop
  if (tc.stream) body.stream = true
  const userId = typeof hub.user === 'string' ? hub.user : typeof (hub.metadata as Json | undefined)?.user_id === 'string' ? (hub.metadata as Json).user_id : undefined
  if (userId !== undefined) body.metadata = { user_id: userId }
  if (hub.thinking != null) body.thinking = hub.thinking
  else if (typeof hub.reasoning_effort === 'string' && hub.reasoning_effort !== 'none') {
    const budget = EFFORT_BUDGET[hub.reasoning_effort]
    if (budget === undefined) throw cannot('reasoning_effort', `"${hub.reasoning_effort}" has no thinking budget`)
    body.thinking = { type: 'enabled', budget_tokens: budget }
    if ((body.max_tokens as number) <= budget) body.max_tokens = budget + (body.max_tokens as number)
  }
  const tools = convertTools(hub.tools, omitted)
  const choice = convertToolChoice(hub.tool_choice, hub.parallel_tool_calls)
  if (hub.response_format != null) {
    const rf = hub.response_format as Json
    if (rf.type === 'json_object' || rf.type === 'json_schema') {
      if (tools.length) throw cannot('response_format', 'JSON mode is emulated with a forced tool and cannot be combined with tools')
      const schema = rf.type === 'json_schema' ? ((rf.json_schema as Json | undefined)?.schema as Json | undefined) ?? { type: 'object' } : { type: 'object' }
      tools.push({ name: JSON_TOOL, description: 'Answer with the JSON the user asked for.', input_schema: schema })
      body.tool_choice = { type: 'tool', name: JSON_TOOL }
    } else if (rf.type !== 'text') throw cannot('response_format', `type "${String(rf.type)}" is unknown`)
  }
  if (tools.length) body.tools = tools
  if (choice !== undefined && body.tool_choice === undefined) body.tool_choice = choice
  return { body, omitted }
}

function convertMessages(raw: unknown[], omitted: string[]): { system: Json[]; messages: Json[] } {
  const system: Json[] = []
  const messages: Json[] = []
  const push = (role: 'user' | 'assistant', blocks: Json[]) => {
    const last = messages[messages.length - 1]
    // Tool results and the user text after them are one user turn for Anthropic.
    if (last && last.role === role && role === 'user') (last.content as Json[]).push(...blocks)
    else messages.push({ role, content: blocks })
  }
  raw.forEach((m, i) => {
    const msg = m as Json
    const at = `messages[${i}]`
    switch (msg.role) {
      case 'system':
      case 'developer':
        system.push(...contentBlocks(msg.content, at, false))
        return
      case 'user':
        return push('user', contentBlocks(msg.content, at, true))
      case 'tool': {
        const block: Json = { type: 'tool_result', tool_use_id: msg.tool_call_id, content: toolResultContent(msg.content, at) }
        if (msg.is_error === true) block.is_error = true
        return push('user', [block])
      }
      case 'assistant':
        return push('assistant', assistantBlocks(msg, at, omitted))
      default:
        throw cannot(`${at}.role`, `role "${String(msg.role)}" has no Anthropic equivalent`)
    }
  })
  return { system, messages }
}

function contentBlocks(content: unknown, at: string, images: boolean): Json[] {
  if (typeof content === 'string') return content === '' ? [] : [{ type: 'text', text: content }]
  if (!Array.isArray(content)) return []
  return content.map((p, j) => {
    const part = p as Json
    const where = `${at}.content[${j}]`
    let block: Json
    if (part.type === 'text') block = { type: 'text', text: part.text }
    else if (part.type === 'image_url' && images) block = { type: 'image', source: imageSource(part.image_url, where) }
    else throw cannot(`${where}.type`, `content part "${String(part.type)}" has no Anthropic equivalent here`)
    if (part.cache_control) block.cache_control = part.cache_control
    return block
  })
}

function imageSource(image: unknown, where: string): Json {
  const url = typeof image === 'string' ? image : (image as Json | undefined)?.url
  if (typeof url !== 'string') throw cannot(`${where}.image_url`, 'an image needs a URL')
  const data = parseDataUrl(url)
  if (data) return { type: 'base64', media_type: data.mediaType, data: data.data }
  if (/^https?:\/\//i.test(url)) return { type: 'url', url }
  throw cannot(`${where}.image_url`, 'only data: and http(s) URLs are images')
}

function toolResultContent(content: unknown, at: string): string | Json[] {
  if (typeof content === 'string') return content
  return contentBlocks(content, at, true)
}

function assistantBlocks(msg: Json, at: string, omitted: string[]): Json[] {
  const blocks: Json[] = []
  const thinking = msg.thinking_blocks as ThinkingBlock[] | undefined
  if (Array.isArray(thinking) && thinking.length) {
    for (const b of thinking) blocks.push(b.type === 'redacted_thinking' ? { type: 'redacted_thinking', data: b.data } : { type: 'thinking', thinking: b.thinking ?? '', signature: b.signature ?? '' })
  } else if (typeof msg.reasoning_content === 'string' && msg.reasoning_content !== '') {
    omitted.push(`${at}.reasoning_content`) // a thinking block without its signature is refused by Anthropic
  }
  blocks.push(...contentBlocks(msg.content, at, false))
  const calls = msg.tool_calls
  if (Array.isArray(calls)) {
    calls.forEach((c, k) => {
      const call = c as Json
      const fn = (call.function ?? {}) as Json
      let input: unknown = {}
      if (typeof fn.arguments === 'string' && fn.arguments.trim() !== '') {
        try { input = JSON.parse(fn.arguments) } catch { throw cannot(`${at}.tool_calls[${k}].function.arguments`, 'the arguments are not JSON') }
      }
      blocks.push({ type: 'tool_use', id: call.id, name: fn.name, input })
    })
  }
  return blocks
}

function convertTools(raw: unknown, omitted: string[]): Json[] {
  if (!Array.isArray(raw)) return []
  const out: Json[] = []
  raw.forEach((t, i) => {
    const tool = t as Json
    if (tool.type !== 'function') {
      omitted.push(`tools[${i}]`) // a hosted tool the backend cannot run (the safe-omission rule)
      return
    }
    const fn = (tool.function ?? {}) as Json
    const def: Json = { name: fn.name, input_schema: (fn.parameters as Json | undefined) ?? { type: 'object', properties: {} } }
    if (typeof fn.description === 'string') def.description = fn.description
    if (tool.cache_control) def.cache_control = tool.cache_control
    out.push(def)
  })
  return out
}

function convertToolChoice(choice: unknown, parallel: unknown): Json | undefined {
  let out: Json | undefined
  if (choice === 'auto') out = { type: 'auto' }
  else if (choice === 'required') out = { type: 'any' }
  else if (choice === 'none') out = { type: 'none' }
  else if (choice && typeof choice === 'object') {
    const name = ((choice as Json).function as Json | undefined)?.name
    if (typeof name !== 'string') throw cannot('tool_choice', 'a named tool choice needs function.name')
    out = { type: 'tool', name }
  } else if (choice != null) throw cannot('tool_choice', `"${String(choice)}" is unknown`)
  if (parallel === false) out = { ...(out ?? { type: 'auto' }), disable_parallel_tool_use: true }
  return out
}

// ---------------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------------

export function anthropicToHubResponse(body: Json, tc: TranslateContext): Json {
  const content = Array.isArray(body.content) ? (body.content as Json[]) : []
  let text = ''
  let reasoning = ''
  const thinking: ThinkingBlock[] = []
  const toolCalls: Json[] = []
  let jsonMode = false
  for (const b of content) {
    if (b.type === 'text') text += String(b.text ?? '')
    else if (b.type === 'thinking') {
      reasoning += String(b.thinking ?? '')
      thinking.push({ type: 'thinking', thinking: String(b.thinking ?? ''), signature: String(b.signature ?? '') })
    } else if (b.type === 'redacted_thinking') thinking.push({ type: 'redacted_thinking', data: String(b.data ?? '') })
    else if (b.type === 'tool_use' && b.name === JSON_TOOL) {
      jsonMode = true
      text += JSON.stringify(b.input ?? {})
    } else if (b.type === 'tool_use') toolCalls.push({ id: b.id, type: 'function', function: { name: b.name, arguments: JSON.stringify(b.input ?? {}) } })
  }
  const message: Json = { role: 'assistant', content: text === '' && toolCalls.length ? null : text, refusal: null }
  if (reasoning) message.reasoning_content = reasoning
  if (thinking.length) message.thinking_blocks = thinking
  if (toolCalls.length) message.tool_calls = toolCalls
  const finish = jsonMode ? 'stop' : finishFromStopReason(body.stop_reason)
  return {
    id: `chatcmpl-${tc.requestId}`,
    object: 'chat.completion',
    created: tc.created,
    model: tc.publicModel,
    choices: [{ index: 0, message, logprobs: null, finish_reason: finish }],
    usage: hubUsageFromCounts(countsOf(body.usage)),
  }
}

const ERROR_TYPES: Record<string, string> = {
  invalid_request_error: 'invalid_request_error',
  authentication_error: 'authentication_error',
  permission_error: 'permission_error',
  not_found_error: 'invalid_request_error',
  request_too_large: 'invalid_request_error',
  rate_limit_error: 'rate_limit_error',
  api_error: 'api_error',
  overloaded_error: 'overloaded_error',
}

export function anthropicError(status: number, body: Json): TranslatedError {
  const err = (body.error ?? {}) as Json
  const type = typeof err.type === 'string' ? err.type : 'api_error'
  return {
    message: typeof err.message === 'string' ? err.message : `The Anthropic backend failed with status ${status}.`,
    type: ERROR_TYPES[type] ?? 'api_error',
    code: type,
    param: null,
    retriable: type === 'overloaded_error' || status === 529,
  }
}

// ---------------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------------

const TEXT_DELTA_HEAD = '{"type":"content_block_delta","index":'
const TEXT_DELTA_MID = ',"delta":{"type":"text_delta","text":'

/**
 * The block index and text of a text delta in the compact form Anthropic sends (most events of an answer),
 * without parsing the whole event: only its text's string literal is parsed. Anything else, including any
 * other spacing or key order, is null and takes the full JSON.parse. Exact, because the remainder between
 * the fixed head and the closing `}}` is accepted only when JSON.parse reads it as one string.
 */
function textDeltaOf(data: string): { index: number; text: string } | null {
  if (!data.startsWith(TEXT_DELTA_HEAD)) return null
  const start = TEXT_DELTA_HEAD.length
  let i = start
  let index = 0
  for (let c = data.charCodeAt(i); c >= 48 && c <= 57 && i - start < 9; c = data.charCodeAt(++i)) index = index * 10 + (c - 48)
  // No digits, or a leading zero (not JSON: the full parse reports it).
  if (i === start || (data.charCodeAt(start) === 48 && i - start > 1)) return null
  if (!data.startsWith(TEXT_DELTA_MID, i) || !data.endsWith('}}')) return null
  const literal = data.slice(i + TEXT_DELTA_MID.length, data.length - 2)
  if (literal.charCodeAt(0) !== 34 || literal.charCodeAt(literal.length - 1) !== 34) return null
  try {
    const text: unknown = JSON.parse(literal)
    return typeof text === 'string' ? { index, text } : null
  } catch {
    return null
  }
}

/** Anthropic Messages stream events → hub chunks, one event at a time. */
export class AnthropicDecoder implements StreamDecoder {
  private readonly id: string
  private readonly counts: AnthropicCounts = { input: 0, output: 0, cacheRead: 0, cacheWrite: 0 }
  /** Per content-block index: what it is, and for tool blocks their hub tool index. */
  private readonly blocks = new Map<number, { kind: 'text' | 'thinking' | 'tool' | 'json' | 'other'; tool: number; thinking: string; signature: string }>()
  private tools = 0
  private finished = false
  private usageSent = false
  private jsonMode = false

  constructor(private readonly tc: TranslateContext) {
    this.id = `chatcmpl-${tc.requestId}`
  }

  private chunk(delta: Json | null, finish: string | null = null): Json {
    return hubChunk(this.id, this.tc.publicModel, this.tc.created, delta === null ? null : { index: 0, delta, logprobs: null, finish_reason: finish })
  }

  push(event: UpstreamEvent): readonly Json[] {
    if (event.data === '' || event.data === '[DONE]') return []
    // Keep-alives carry nothing: skipped by their event name without parsing, as Anthropic's own SDK does.
    if (event.event === 'ping') return []
    if (event.event === 'content_block_delta') {
      const text = textDeltaOf(event.data)
      if (text !== null) {
        if (!this.blocks.has(text.index)) throw new UpstreamFailure(GW_ERR.BAD_GATEWAY, 'The Anthropic backend sent a delta for a block it never started.', 'status', '', 502)
        return [this.chunk({ content: text.text })]
      }
    }
    let ev: Json
    try {
      ev = JSON.parse(event.data) as Json
    } catch {
      throw new UpstreamFailure(GW_ERR.BAD_GATEWAY, 'The Anthropic backend sent a malformed stream event.', 'status', '', 502)
    }
    switch (ev.type) {
      case 'message_start':
        countsOf((ev.message as Json | undefined)?.usage, this.counts)
        return [this.chunk({ role: 'assistant', content: '' })]
      case 'content_block_start': {
        const index = Number(ev.index)
        const b = (ev.content_block ?? {}) as Json
        if (b.type === 'text') {
          this.blocks.set(index, { kind: 'text', tool: -1, thinking: '', signature: '' })
          return typeof b.text === 'string' && b.text !== '' ? [this.chunk({ content: b.text })] : []
        }
        if (b.type === 'thinking') {
          this.blocks.set(index, { kind: 'thinking', tool: -1, thinking: String(b.thinking ?? ''), signature: String(b.signature ?? '') })
          return []
        }
        if (b.type === 'redacted_thinking') {
          this.blocks.set(index, { kind: 'other', tool: -1, thinking: '', signature: '' })
          return [this.chunk({ thinking_blocks: [{ type: 'redacted_thinking', data: b.data }] })]
        }
        if (b.type === 'tool_use' && b.name === JSON_TOOL) {
          this.jsonMode = true
          this.blocks.set(index, { kind: 'json', tool: -1, thinking: '', signature: '' })
          return []
        }
        if (b.type === 'tool_use') {
          const tool = this.tools++
          this.blocks.set(index, { kind: 'tool', tool, thinking: '', signature: '' })
          return [this.chunk({ tool_calls: [{ index: tool, id: b.id, type: 'function', function: { name: b.name, arguments: '' } }] })]
        }
        this.blocks.set(index, { kind: 'other', tool: -1, thinking: '', signature: '' })
        return []
      }
      case 'content_block_delta': {
        const block = this.blocks.get(Number(ev.index))
        const d = (ev.delta ?? {}) as Json
        if (!block) throw new UpstreamFailure(GW_ERR.BAD_GATEWAY, 'The Anthropic backend sent a delta for a block it never started.', 'status', '', 502)
        if (d.type === 'text_delta') return [this.chunk({ content: d.text })]
        if (d.type === 'thinking_delta') {
          block.thinking += String(d.thinking ?? '')
          return [this.chunk({ reasoning_content: d.thinking })]
        }
        if (d.type === 'signature_delta') {
          block.signature += String(d.signature ?? '')
          return []
        }
        if (d.type === 'input_json_delta') {
          const piece = String(d.partial_json ?? '')
          if (piece === '') return []
          if (block.kind === 'json') return [this.chunk({ content: piece })]
          return [this.chunk({ tool_calls: [{ index: block.tool, function: { arguments: piece } }] })]
        }
        return [] // citations_delta and future delta types carry nothing the hub has
      }
      case 'content_block_stop': {
        const block = this.blocks.get(Number(ev.index))
        if (block?.kind === 'thinking') return [this.chunk({ thinking_blocks: [{ type: 'thinking', thinking: block.thinking, signature: block.signature }] })]
        return []
      }
      case 'message_delta': {
        countsOf(ev.usage, this.counts)
        const reason = ((ev.delta ?? {}) as Json).stop_reason
        if (reason == null) return []
        this.finished = true
        return [this.chunk({}, this.jsonMode ? 'stop' : finishFromStopReason(reason))]
      }
      case 'message_stop':
        return this.usageChunk()
      case 'error': {
        const e = anthropicError(500, ev)
        const status = e.retriable ? 529 : 500
        throw new UpstreamFailure(GW_ERR.BAD_GATEWAY, `The Anthropic backend reported ${e.code ?? 'an error'} in its stream.`, 'status', '', status)
      }
      default:
        return [] // ping, and event types added later
    }
  }

  private usageChunk(): Json[] {
    if (this.usageSent) return []
    this.usageSent = true
    return [hubChunk(this.id, this.tc.publicModel, this.tc.created, null, hubUsageFromCounts(this.counts))]
  }

  end(): readonly Json[] {
    // A stream cut before message_stop: no usage chunk, so the kernel counts what it saw.
    if (!this.finished || this.usageSent) return []
    return this.usageChunk()
  }
}

export const anthropicCodec: BackendCodec = {
  schema: 'anthropic',
  request: hubToAnthropicRequest,
  response: anthropicToHubResponse,
  decoder: (tc) => new AnthropicDecoder(tc),
  error: anthropicError,
}

