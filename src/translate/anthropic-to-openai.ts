/**
 * The Anthropic front door's translation: an Anthropic Messages request → a hub (OpenAI chat) request, and a
 * hub `chat.completion` → an Anthropic `message`. The inverse of openai-to-anthropic.ts, field for field
 * (docs/translation.md). Streams are encoded by anthropic-to-openai-stream.ts.
 */
import { GatewayError, GW_ERR } from '../core/errors.ts'
import type { ThinkingBlock } from './hub.ts'
import { anthropicId, anthropicUsageFromHub, stopReasonFromFinish } from './helpers/anthropic.ts'

type Json = Record<string, unknown>

const invalid = (param: string, message: string) => new GatewayError(GW_ERR.INVALID_REQUEST, message, { param })

/** Request fields the front door translates. */
const HANDLED = new Set(['model', 'messages', 'system', 'max_tokens', 'temperature', 'top_p', 'top_k', 'stop_sequences', 'stream', 'tools', 'tool_choice', 'metadata', 'thinking', 'output_config', 'output_format'])
/**
 * Fields that only mean something to Anthropic itself and are safe to drop when another schema serves the
 * request (they still go up untouched when the backend speaks Anthropic): service hints, hosted-tool plumbing.
 */
const SAFE_TO_OMIT = new Set(['service_tier', 'container', 'mcp_servers', 'context_management', 'inference_geo', 'speed'])

export interface ParsedAnthropic {
  readonly hub: Json
  /** Anthropic fields dropped for a backend of another schema (listed in x-sluice-omitted). */
  readonly omitted: string[]
}

/** Validates what routing needs and translates the rest; a field whose meaning would be lost is a 400 naming it. */
export function anthropicRequestToHub(body: Json): ParsedAnthropic {
  if (typeof body.model !== 'string' || body.model === '') throw invalid('model', 'model: Field required')
  if (!Array.isArray(body.messages)) throw invalid('messages', 'messages: Field required')
  if (typeof body.max_tokens !== 'number' || !Number.isInteger(body.max_tokens) || body.max_tokens < 1) throw invalid('max_tokens', 'max_tokens: a positive integer is required')
  if (body.stream !== undefined && typeof body.stream !== 'boolean') throw invalid('stream', 'stream: Input should be a valid boolean')
  const omitted: string[] = []
  for (const k of Object.keys(body)) {
    if (HANDLED.has(k) || body[k] === undefined || body[k] === null) continue
    if (SAFE_TO_OMIT.has(k)) omitted.push(k)
    else throw invalid(k, `${k}: the field is not supported by the gateway's translation`)
  }
  const messages: Json[] = []
  if (body.system !== undefined) {
    const system = typeof body.system === 'string' ? body.system : textParts(body.system, 'system')
    if (system !== '' && !(Array.isArray(system) && system.length === 0)) messages.push({ role: 'system', content: system })
  }
  body.messages.forEach((m, i) => convertMessage(m, `messages[${i}]`, messages))
  if (messages.filter((m) => m.role !== 'system').length === 0) throw invalid('messages', 'messages: at least one message is required')
  const hub: Json = { model: body.model, messages, max_tokens: body.max_tokens }
  if (body.stream === true) hub.stream = true
  if (body.temperature != null) hub.temperature = body.temperature
  if (body.top_p != null) hub.top_p = body.top_p
  if (body.top_k != null) hub.top_k = body.top_k
  if (body.stop_sequences != null) {
    if (!Array.isArray(body.stop_sequences)) throw invalid('stop_sequences', 'stop_sequences: Input should be a valid list')
    hub.stop = body.stop_sequences
  }
  const meta = body.metadata as Json | undefined
  if (meta && typeof meta.user_id === 'string') hub.user = meta.user_id
  if (body.thinking != null) {
    const t = body.thinking as Json
    if (t.type === 'enabled') hub.thinking = { type: 'enabled', budget_tokens: t.budget_tokens }
    else if (t.type === 'disabled') hub.thinking = { type: 'disabled' }
    else if (t.type === 'adaptive') hub.thinking = { ...t }
    else throw invalid('thinking.type', `thinking.type: "${String(t.type)}" is unknown`)
  }
  // Structured output: Anthropic's output_config.format (or the older beta output_format) is OpenAI's json_schema.
  const oc = (body.output_config ?? {}) as Json
  const format = (oc.format ?? body.output_format) as Json | undefined
  if (format != null) {
    if (format.type !== 'json_schema' || !format.schema || typeof format.schema !== 'object') throw invalid('output_config.format', 'output_config.format: only json_schema formats can be translated')
    hub.response_format = { type: 'json_schema', json_schema: { name: 'output', schema: format.schema, strict: true } }
  }
  // Effort is a hint to Anthropic's own models: safe to drop for another schema.
  if (oc.effort !== undefined) omitted.push('output_config.effort')
  for (const k of Object.keys(oc)) if (k !== 'format' && k !== 'effort') throw invalid(`output_config.${k}`, `output_config.${k}: the field is not supported by the gateway's translation`)
  if (body.tools != null) {
    if (!Array.isArray(body.tools)) throw invalid('tools', 'tools: Input should be a valid list')
    const tools: Json[] = []
    body.tools.forEach((t, i) => {
      const tool = t as Json
      if (tool.type !== undefined && tool.type !== 'custom') {
        omitted.push(`tools[${i}]`) // an Anthropic-hosted tool (web search, code execution…): only Anthropic can run it
        return
      }
      if (typeof tool.name !== 'string') throw invalid(`tools[${i}].name`, `tools.${i}.name: Field required`)
      const fn: Json = { name: tool.name, parameters: tool.input_schema ?? { type: 'object', properties: {} } }
      if (typeof tool.description === 'string') fn.description = tool.description
      const def: Json = { type: 'function', function: fn }
      if (tool.cache_control) def.cache_control = tool.cache_control
      tools.push(def)
    })
    if (tools.length) hub.tools = tools
  }
  if (body.tool_choice != null) {
    const c = body.tool_choice as Json
    if (c.type === 'auto') hub.tool_choice = 'auto'
    else if (c.type === 'any') hub.tool_choice = 'required'
    else if (c.type === 'none') hub.tool_choice = 'none'
    else if (c.type === 'tool' && typeof c.name === 'string') hub.tool_choice = { type: 'function', function: { name: c.name } }
    else throw invalid('tool_choice', 'tool_choice: expected auto, any, none or tool with a name')
    if (c.disable_parallel_tool_use === true) hub.parallel_tool_calls = false
    // Without tools there is nothing to choose (Anthropic accepts it; OpenAI refuses tool_choice without tools).
    if (!hub.tools) { delete hub.tool_choice; delete hub.parallel_tool_calls }
  }
  return { hub, omitted }
}

function textParts(blocks: unknown, at: string): Json[] {
  if (!Array.isArray(blocks)) throw invalid(at, `${at}: Input should be a string or a list of text blocks`)
  return blocks.map((b, j) => {
    const block = b as Json
    if (!block || block.type !== 'text' || typeof block.text !== 'string') throw invalid(`${at}[${j}].type`, `${at}.${j}: only text blocks are allowed here`)
    return withCache({ type: 'text', text: block.text }, block)
  })
}

const withCache = (part: Json, block: Json): Json => (block.cache_control ? { ...part, cache_control: block.cache_control } : part)

function imagePart(block: Json, at: string): Json {
  const src = (block.source ?? {}) as Json
  if (src.type === 'base64' && typeof src.media_type === 'string' && typeof src.data === 'string') {
    return withCache({ type: 'image_url', image_url: { url: `data:${src.media_type};base64,${src.data}` } }, block)
  }
  if (src.type === 'url' && typeof src.url === 'string') return withCache({ type: 'image_url', image_url: { url: src.url } }, block)
  throw invalid(`${at}.source.type`, `${at}.source: only base64 and url image sources can be translated`)
}

function convertMessage(m: unknown, at: string, out: Json[]): void {
  const msg = m as Json
  if (!msg || typeof msg !== 'object') throw invalid(at, `${at}: Input should be an object`)
  if (msg.role === 'system') {
    // A system message mid-conversation (Anthropic's mid-conversation-system beta) is a hub system message in place.
    out.push({ role: 'system', content: typeof msg.content === 'string' ? msg.content : textParts(msg.content, `${at}.content`) })
    return
  }
  if (msg.role !== 'user' && msg.role !== 'assistant') throw invalid(`${at}.role`, `${at}.role: Input should be 'user' or 'assistant'`)
  if (typeof msg.content === 'string') {
    out.push({ role: msg.role, content: msg.content })
    return
  }
  if (!Array.isArray(msg.content)) throw invalid(`${at}.content`, `${at}.content: Field required`)
  if (msg.role === 'assistant') {
    out.push(assistantMessage(msg.content as Json[], at))
    return
  }
  // A user turn: tool results first become tool messages (OpenAI's order), the rest one user message.
  let parts: Json[] = []
  const flush = () => {
    if (parts.length) out.push({ role: 'user', content: parts })
    parts = []
  }
  ;(msg.content as Json[]).forEach((b, j) => {
    const where = `${at}.content[${j}]`
    switch (b?.type) {
      case 'text':
        parts.push(withCache({ type: 'text', text: b.text }, b))
        break
      case 'image':
        parts.push(imagePart(b, where))
        break
      case 'tool_result': {
        flush()
        const tool: Json = { role: 'tool', tool_call_id: b.tool_use_id, content: toolResultContent(b.content, where) }
        if (b.is_error === true) tool.is_error = true
        out.push(tool)
        break
      }
      default:
        throw invalid(`${where}.type`, `${where}.type: content block "${String(b?.type)}" cannot be translated for this backend`)
    }
  })
  flush()
}

function toolResultContent(content: unknown, at: string): string | Json[] {
  if (content === undefined || content === null) return ''
  if (typeof content === 'string') return content
  if (!Array.isArray(content)) throw invalid(`${at}.content`, `${at}.content: Input should be a string or a list`)
  return (content as Json[]).map((b, k) => {
    if (b?.type === 'text') return withCache({ type: 'text', text: b.text }, b)
    if (b?.type === 'image') return imagePart(b, `${at}.content[${k}]`)
    throw invalid(`${at}.content[${k}].type`, `${at}.content.${k}: block "${String(b?.type)}" cannot be translated`)
  })
}

function assistantMessage(blocks: Json[], at: string): Json {
  const texts: Json[] = []
  const thinking: ThinkingBlock[] = []
  let reasoning = ''
  const calls: Json[] = []
  blocks.forEach((b, j) => {
    switch (b?.type) {
      case 'text':
        texts.push(withCache({ type: 'text', text: b.text }, b))
        break
      case 'thinking':
        reasoning += String(b.thinking ?? '')
        thinking.push({ type: 'thinking', thinking: String(b.thinking ?? ''), signature: String(b.signature ?? '') })
        break
      case 'redacted_thinking':
        thinking.push({ type: 'redacted_thinking', data: String(b.data ?? '') })
        break
      case 'tool_use':
        calls.push({ id: b.id, type: 'function', function: { name: b.name, arguments: JSON.stringify(b.input ?? {}) } })
        break
      default:
        throw invalid(`${at}.content[${j}].type`, `${at}.content.${j}.type: content block "${String(b?.type)}" cannot be translated for this backend`)
    }
  })
  const plain = texts.every((t) => t.cache_control === undefined)
  const msg: Json = { role: 'assistant', content: texts.length === 0 ? (calls.length ? null : '') : plain ? texts.map((t) => t.text).join('') : texts }
  if (reasoning) msg.reasoning_content = reasoning
  if (thinking.length) msg.thinking_blocks = thinking
  if (calls.length) msg.tool_calls = calls
  return msg
}

// ---------------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------------

/** A hub `chat.completion` as an Anthropic `message`. */
export function hubToAnthropicMessage(hub: Json, requestId: string): Json {
  const choice = ((hub.choices as Json[] | undefined) ?? [])[0] ?? {}
  const m = (choice.message ?? {}) as Json
  const content: Json[] = []
  const thinking = m.thinking_blocks as ThinkingBlock[] | undefined
  if (Array.isArray(thinking)) {
    for (const b of thinking) content.push(b.type === 'redacted_thinking' ? { type: 'redacted_thinking', data: b.data } : { type: 'thinking', thinking: b.thinking ?? '', signature: b.signature ?? '' })
  } else if (typeof m.reasoning_content === 'string' && m.reasoning_content !== '') {
    content.push({ type: 'thinking', thinking: m.reasoning_content, signature: '' })
  }
  const text = typeof m.content === 'string' ? m.content : Array.isArray(m.content) ? (m.content as Json[]).map((p) => String(p.text ?? '')).join('') : ''
  if (text !== '') content.push({ type: 'text', text })
  else if (typeof m.refusal === 'string' && m.refusal !== '') content.push({ type: 'text', text: m.refusal })
  if (Array.isArray(m.tool_calls)) {
    for (const c of m.tool_calls as Json[]) {
      const fn = (c.function ?? {}) as Json
      content.push({ type: 'tool_use', id: c.id, name: fn.name, input: parseArguments(fn.arguments) })
    }
  }
  return {
    id: typeof hub.id === 'string' && hub.id.startsWith('msg_') ? hub.id : anthropicId('msg', requestId),
    type: 'message',
    role: 'assistant',
    model: hub.model,
    content,
    stop_reason: stopReasonFromFinish(choice.finish_reason),
    stop_sequence: null,
    usage: anthropicUsageFromHub(hub.usage),
  }
}

/** Tool-call arguments as the object Anthropic's `input` is (a backend's broken JSON stays visible as a string field). */
export function parseArguments(args: unknown): unknown {
  if (typeof args !== 'string' || args.trim() === '') return {}
  try {
    const v = JSON.parse(args)
    return v && typeof v === 'object' && !Array.isArray(v) ? v : { value: v }
  } catch {
    return { _raw_arguments: args }
  }
}
