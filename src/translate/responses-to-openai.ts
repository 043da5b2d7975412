/**
 * The Responses front door's translation: an OpenAI Responses request (its input items, plus the stored items of
 * the conversation it continues) → a hub (OpenAI chat) request, and a hub `chat.completion` → a Responses
 * `response` object. Streams are encoded by responses-to-openai-stream.ts. docs/translation.md has the table.
 *
 * Documented rules (docs/translation.md, "Responses ↔ hub"):
 * - hosted tools (web_search, file_search, code_interpreter, computer, mcp, image_generation, local_shell…) are
 *   omitted and listed in `x-sluice-omitted` (only OpenAI can run them; the model simply cannot call them);
 * - `namespace` tool groups are flattened: tool `ns` / `fn` is the hub function `ns__fn`, and calls come back as
 *   `function_call` items with `namespace: "ns"`, `name: "fn"`;
 * - `custom` (freeform) tools become functions with one string parameter `input`; their calls come back as
 *   `custom_tool_call` items;
 * - reasoning items: the gateway's own `encrypted_content` (made from Anthropic/Bedrock thinking blocks and their
 *   signatures) is decoded and passed back to the backend unchanged; another issuer's (OpenAI's) cannot be carried
 *   to a backend of another schema and is omitted (`input[i].encrypted_content`), its summary text kept.
 */
import { GatewayError, GW_ERR } from '../core/errors.ts'
import type { ThinkingBlock } from './hub.ts'

type Json = Record<string, unknown>

const invalid = (param: string, message: string) => new GatewayError(GW_ERR.INVALID_REQUEST, message, { param })

/** Request fields translated into the hub (or kept by the gateway: store, previous_response_id, include). */
const HANDLED = new Set(['model', 'input', 'instructions', 'tools', 'tool_choice', 'parallel_tool_calls', 'max_output_tokens', 'temperature', 'top_p', 'stream',
  'text', 'reasoning', 'store', 'previous_response_id', 'include', 'prompt_cache_key', 'metadata', 'user', 'safety_identifier', 'stream_options', 'top_logprobs', 'service_tier', 'truncation', 'max_tool_calls', 'prompt_cache_retention', 'client_metadata'])
/** Fields the gateway cannot honour for a translated backend, refused by name (silently dropping them would change the answer). */
const REFUSED: Record<string, string> = {
  background: 'background responses are not supported by the gateway for this backend',
  conversation: 'conversation objects are not supported by the gateway; use previous_response_id',
  prompt: 'prompt templates are not supported by the gateway for this backend',
}

/** Hosted tool types: only OpenAI runs them (omitted for other backends, by the safe-omission rule). */
const HOSTED_TOOLS = new Set(['web_search', 'web_search_preview', 'web_search_2025_08_26', 'web_search_preview_2025_03_11', 'file_search', 'code_interpreter', 'computer_use_preview', 'computer', 'mcp', 'image_generation', 'local_shell', 'shell', 'apply_patch', 'tool_search', 'skills'])

/** The separator of a flattened namespace tool's hub name (`ns__fn`): allowed in every backend's tool names. */
export const NAMESPACE_SEPARATOR = '__'

/** What the answer's rendering needs to know about the request's tools. */
export interface ToolNames {
  /** hub function name → its namespace and name (flattened namespace tools). */
  readonly namespaced: ReadonlyMap<string, { namespace: string; name: string }>
  /** hub function names of custom (freeform) tools. */
  readonly custom: ReadonlySet<string>
}

export interface ParsedResponsesRequest {
  readonly hub: Json
  readonly omitted: string[]
  readonly tools: ToolNames
  /** The request's own input items, normalised (messages with `type` and array content), for the store. */
  readonly input: Json[]
}

/** Prefix of the gateway's own reasoning `encrypted_content` (thinking blocks with their signatures, base64url JSON). */
const ENCRYPTED_PREFIX = 'sluice1.'

export function encodeReasoning(blocks: readonly ThinkingBlock[]): string {
  return ENCRYPTED_PREFIX + Buffer.from(JSON.stringify(blocks)).toString('base64url')
}

/** The thinking blocks in the gateway's own encrypted_content; null when it is another issuer's (or damaged). */
export function decodeReasoning(s: string): ThinkingBlock[] | null {
  if (!s.startsWith(ENCRYPTED_PREFIX)) return null
  try {
    const v = JSON.parse(Buffer.from(s.slice(ENCRYPTED_PREFIX.length), 'base64url').toString('utf8')) as unknown
    if (!Array.isArray(v)) return null
    const blocks: ThinkingBlock[] = []
    for (const b of v as Json[]) {
      if (b?.type === 'thinking') blocks.push({ type: 'thinking', thinking: String(b.thinking ?? ''), signature: String(b.signature ?? '') })
      else if (b?.type === 'redacted_thinking') blocks.push({ type: 'redacted_thinking', data: String(b.data ?? '') })
      else return null
    }
    return blocks
  } catch {
    return null
  }
}

/** A request's `input` as a list of items (a string is one user message). */
export function inputItems(input: unknown): Json[] {
  if (input === undefined || input === null) return []
  if (typeof input === 'string') return [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: input }] }]
  if (!Array.isArray(input)) throw invalid('input', "Invalid type for 'input': expected a string or an array of input items.")
  return input.map((raw, i) => normaliseItem(raw, i))
}

function normaliseItem(raw: unknown, i: number): Json {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw invalid(`input[${i}]`, `Invalid 'input[${i}]': expected an object.`)
  const it = raw as Json
  if (it.type === undefined || it.type === 'message') {
    if (it.role !== 'user' && it.role !== 'assistant' && it.role !== 'system' && it.role !== 'developer') {
      throw invalid(`input[${i}].role`, `Invalid 'input[${i}].role': expected one of 'user', 'assistant', 'system' or 'developer'.`)
    }
    let content = it.content
    if (typeof content === 'string') content = [{ type: it.role === 'assistant' ? 'output_text' : 'input_text', text: content, ...(it.role === 'assistant' ? { annotations: [] } : {}) }]
    if (!Array.isArray(content)) throw invalid(`input[${i}].content`, `Invalid 'input[${i}].content': expected a string or an array of content parts.`)
    return { ...it, type: 'message', content }
  }
  if (typeof it.type !== 'string') throw invalid(`input[${i}].type`, `Invalid 'input[${i}].type': expected a string.`)
  return it
}

/**
 * A Responses request → hub. `history` is the stored conversation it continues (earlier inputs and outputs, in
 * order), already normalised.
 */
export function responsesRequestToHub(body: Json, history: readonly Json[] = []): ParsedResponsesRequest {
  if (typeof body.model !== 'string' || body.model === '') throw invalid('model', "Missing required parameter: 'model'.")
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== 'boolean') throw invalid('stream', "Invalid type for 'stream': expected a boolean.")
  const omitted: string[] = []
  for (const k of Object.keys(body)) {
    if (body[k] === undefined || body[k] === null) continue
    if (k in REFUSED && body[k] !== false) throw invalid(k, `${k}: ${REFUSED[k]}.`)
    if (!HANDLED.has(k) && !(k in REFUSED)) throw invalid(k, `Unknown parameter: '${k}'.`)
  }
  const input = inputItems(body.input)
  if (input.length === 0 && history.length === 0) throw invalid('input', "Missing required parameter: 'input'.")

  const tools = toolsOf(body.tools, omitted)
  const messages: Json[] = []
  if (body.instructions !== undefined && body.instructions !== null) {
    if (typeof body.instructions !== 'string') throw invalid('instructions', "Invalid type for 'instructions': expected a string.")
    if (body.instructions !== '') messages.push({ role: 'system', content: body.instructions })
  }
  itemsToMessages([...history, ...input], history.length, tools.names, messages, omitted)
  if (!messages.some((m) => m.role !== 'system')) throw invalid('input', "Invalid 'input': at least one message or item is required.")

  const hub: Json = { model: body.model, messages }
  if (body.stream === true) hub.stream = true
  if (body.max_output_tokens != null) hub.max_tokens = body.max_output_tokens
  if (body.temperature != null) hub.temperature = body.temperature
  if (body.top_p != null) hub.top_p = body.top_p
  if (typeof body.safety_identifier === 'string') hub.user = body.safety_identifier
  else if (typeof body.user === 'string') hub.user = body.user
  if (typeof body.prompt_cache_key === 'string') hub.prompt_cache_key = body.prompt_cache_key
  if (tools.hub.length) {
    hub.tools = tools.hub
    if (body.parallel_tool_calls === false) hub.parallel_tool_calls = false
  }
  if (body.tool_choice != null && tools.hub.length) hub.tool_choice = toolChoice(body.tool_choice, tools.names)
  const text = body.text as Json | undefined
  if (text != null) {
    if (typeof text !== 'object') throw invalid('text', "Invalid type for 'text': expected an object.")
    const f = text.format as Json | undefined
    if (f != null) {
      if (f.type === 'json_schema') {
        if (!f.schema || typeof f.schema !== 'object') throw invalid('text.format.schema', "Missing required parameter: 'text.format.schema'.")
        const js: Json = { name: typeof f.name === 'string' ? f.name : 'output', schema: f.schema }
        if (typeof f.strict === 'boolean') js.strict = f.strict
        if (typeof f.description === 'string') js.description = f.description
        hub.response_format = { type: 'json_schema', json_schema: js }
      } else if (f.type === 'json_object') hub.response_format = { type: 'json_object' }
      else if (f.type !== 'text') throw invalid('text.format.type', `Invalid 'text.format.type': "${String(f.type).slice(0, 64)}" cannot be translated for this backend.`)
    }
    if (text.verbosity != null) omitted.push('text.verbosity')
  }
  const reasoning = body.reasoning as Json | undefined
  if (reasoning != null) {
    if (typeof reasoning.effort === 'string' && reasoning.effort !== 'none') hub.reasoning_effort = reasoning.effort === 'minimal' ? 'low' : reasoning.effort === 'xhigh' ? 'high' : reasoning.effort
    if (reasoning.summary != null || reasoning.generate_summary != null) omitted.push('reasoning.summary')
  }
  if (Array.isArray(body.include)) {
    for (const inc of body.include) if (inc !== 'reasoning.encrypted_content') omitted.push(`include.${String(inc).slice(0, 64)}`)
  }
  // client_metadata: Codex's turn telemetry (ids, sandbox mode) for OpenAI's side; no backend's answer depends on it.
  for (const k of ['service_tier', 'truncation', 'top_logprobs', 'max_tool_calls', 'prompt_cache_retention', 'client_metadata']) if (body[k] != null) omitted.push(k)
  return { hub, omitted, tools: tools.names, input }
}

function toolsOf(raw: unknown, omitted: string[]): { hub: Json[]; names: ToolNames } {
  const hub: Json[] = []
  const namespaced = new Map<string, { namespace: string; name: string }>()
  const custom = new Set<string>()
  if (raw === undefined || raw === null) return { hub, names: { namespaced, custom } }
  if (!Array.isArray(raw)) throw invalid('tools', "Invalid type for 'tools': expected an array.")
  const add = (t: Json, at: string, ns: string | null) => {
    if (typeof t.name !== 'string' || t.name === '') throw invalid(`${at}.name`, `Missing required parameter: '${at}.name'.`)
    const name = ns === null ? t.name : `${ns}${NAMESPACE_SEPARATOR}${t.name}`
    if (ns !== null) namespaced.set(name, { namespace: ns, name: t.name })
    if (t.type === 'custom') {
      custom.add(name)
      const fn: Json = { name, parameters: { type: 'object', properties: { input: { type: 'string', description: 'The tool input, as free text.' } }, required: ['input'], additionalProperties: false } }
      if (typeof t.description === 'string') fn.description = t.description
      hub.push({ type: 'function', function: fn })
      return
    }
    const fn: Json = { name, parameters: t.parameters && typeof t.parameters === 'object' ? t.parameters : { type: 'object', properties: {} } }
    if (typeof t.description === 'string') fn.description = t.description
    if (typeof t.strict === 'boolean') fn.strict = t.strict
    hub.push({ type: 'function', function: fn })
  }
  raw.forEach((x, i) => {
    const t = x as Json
    const at = `tools[${i}]`
    if (!t || typeof t !== 'object') throw invalid(at, `Invalid '${at}': expected an object.`)
    if (t.type === 'function' || t.type === 'custom') return add(t, at, null)
    if (t.type === 'namespace') {
      if (typeof t.name !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(t.name)) throw invalid(`${at}.name`, `Invalid '${at}.name': a namespace name is letters, digits, '_' and '-'.`)
      if (!Array.isArray(t.tools)) throw invalid(`${at}.tools`, `Missing required parameter: '${at}.tools'.`)
      ;(t.tools as Json[]).forEach((inner, j) => {
        if (inner?.type !== 'function' && inner?.type !== 'custom') throw invalid(`${at}.tools[${j}].type`, `Invalid '${at}.tools[${j}].type': a namespace holds function and custom tools.`)
        add(inner, `${at}.tools[${j}]`, t.name as string)
      })
      return
    }
    if (typeof t.type === 'string' && HOSTED_TOOLS.has(t.type)) {
      omitted.push(`${at}`)
      return
    }
    throw invalid(`${at}.type`, `Invalid '${at}.type': "${String(t.type).slice(0, 64)}" cannot be translated for this backend.`)
  })
  return { hub, names: { namespaced, custom } }
}

function toolChoice(c: unknown, names: ToolNames): unknown {
  if (c === 'auto' || c === 'none' || c === 'required') return c
  const o = c as Json
  if (o && typeof o === 'object') {
    if (o.type === 'function' && typeof o.name === 'string') return { type: 'function', function: { name: hubToolName(o.name, typeof o.namespace === 'string' ? o.namespace : null) } }
    if (o.type === 'custom' && typeof o.name === 'string') return { type: 'function', function: { name: o.name } }
    if (o.type === 'allowed_tools') return o.mode === 'required' ? 'required' : 'auto'
  }
  void names
  throw invalid('tool_choice', "Invalid 'tool_choice': expected auto, none, required, or a function by name.")
}

const hubToolName = (name: string, namespace: string | null): string => (namespace ? `${namespace}${NAMESPACE_SEPARATOR}${name}` : name)

function partsToHub(content: Json[], at: string, role: string): Json[] | string {
  const parts: Json[] = []
  content.forEach((p, j) => {
    const where = `${at}.content[${j}]`
    switch (p?.type) {
      case 'input_text':
      case 'output_text':
      case 'text':
        if (typeof p.text !== 'string') throw invalid(`${where}.text`, `Missing required parameter: '${where}.text'.`)
        parts.push({ type: 'text', text: p.text })
        break
      case 'refusal':
        parts.push({ type: 'text', text: String(p.refusal ?? '') })
        break
      case 'input_image': {
        if (role === 'assistant') throw invalid(`${where}.type`, `Invalid '${where}': images are input content.`)
        if (typeof p.image_url !== 'string') throw invalid(`${where}.image_url`, `Invalid '${where}': only images given by image_url (a URL or data URL) can be translated for this backend.`)
        const img: Json = { url: p.image_url }
        if (typeof p.detail === 'string') img.detail = p.detail
        parts.push({ type: 'image_url', image_url: img })
        break
      }
      default:
        throw invalid(`${where}.type`, `Invalid '${where}.type': content part "${String(p?.type).slice(0, 64)}" cannot be translated for this backend.`)
    }
  })
  // Plain text only: one string (what every backend takes, and what the hub's own clients send).
  return parts.every((p) => p.type === 'text') ? parts.map((p) => p.text as string).join('') : parts
}

/**
 * Items → hub messages. An assistant turn is what the items between two user/tool turns say: reasoning, text and
 * function calls become one assistant message (reasoning_content / thinking_blocks, content, tool_calls).
 */
function itemsToMessages(items: readonly Json[], historyLength: number, names: ToolNames, out: Json[], omitted: string[]): void {
  let assistant: Json | null = null
  const flush = () => {
    if (assistant) out.push(assistant)
    assistant = null
  }
  const open = (): Json => (assistant ??= { role: 'assistant', content: null })
  items.forEach((it, n) => {
    // Stored items are named by their place in the request that sent them; the client's own by input[i].
    const at = n < historyLength ? `previous_response_id` : `input[${n - historyLength}]`
    switch (it.type) {
      case 'message': {
        const role = it.role as string
        const content = partsToHub(it.content as Json[], at, role)
        if (role === 'assistant') {
          if (assistant && (assistant as Json).tool_calls) flush() // text after calls starts a new turn
          const a = open()
          const text = typeof content === 'string' ? content : (content as Json[]).map((p) => String(p.text ?? '')).join('')
          a.content = typeof a.content === 'string' ? a.content + text : text
          break
        }
        flush()
        out.push({ role: role === 'developer' ? 'system' : role, content })
        break
      }
      case 'reasoning': {
        if (assistant && ((assistant as Json).tool_calls || (assistant as Json).content)) flush()
        const a = open()
        const summary = Array.isArray(it.summary) ? (it.summary as Json[]).map((s) => String(s?.text ?? '')).join('') : ''
        const enc = typeof it.encrypted_content === 'string' ? it.encrypted_content : null
        const blocks = enc ? decodeReasoning(enc) : null
        if (blocks) {
          a.thinking_blocks = [...((a.thinking_blocks as ThinkingBlock[] | undefined) ?? []), ...blocks]
          const text = blocks.map((b) => b.thinking ?? '').join('')
          if (text) a.reasoning_content = String(a.reasoning_content ?? '') + text
        } else {
          if (enc) omitted.push(`${at}.encrypted_content`)
          if (summary) a.reasoning_content = String(a.reasoning_content ?? '') + summary
        }
        break
      }
      case 'function_call':
      case 'custom_tool_call': {
        if (typeof it.call_id !== 'string' || it.call_id === '') throw invalid(`${at}.call_id`, `Missing required parameter: '${at}.call_id'.`)
        if (typeof it.name !== 'string' || it.name === '') throw invalid(`${at}.name`, `Missing required parameter: '${at}.name'.`)
        const name = hubToolName(it.name, typeof it.namespace === 'string' ? it.namespace : null)
        let args: string
        if (it.type === 'custom_tool_call') args = JSON.stringify({ input: String(it.input ?? '') })
        else if (typeof it.arguments === 'string') args = it.arguments
        else throw invalid(`${at}.arguments`, `Missing required parameter: '${at}.arguments'.`)
        const a = open()
        a.tool_calls = [...((a.tool_calls as Json[] | undefined) ?? []), { id: it.call_id, type: 'function', function: { name, arguments: args } }]
        break
      }
      case 'function_call_output':
      case 'custom_tool_call_output': {
        if (typeof it.call_id !== 'string' || it.call_id === '') throw invalid(`${at}.call_id`, `Missing required parameter: '${at}.call_id'.`)
        flush()
        out.push({ role: 'tool', tool_call_id: it.call_id, content: toolOutput(it.output, at) })
        break
      }
      case 'item_reference':
        throw invalid(`${at}.type`, `Invalid '${at}.type': item_reference cannot be resolved for this backend; send the item itself, or use previous_response_id.`)
      default:
        throw invalid(`${at}.type`, `Invalid '${at}.type': input item "${String(it.type).slice(0, 64)}" cannot be translated for this backend.`)
    }
  })
  flush()
  void names
}

function toolOutput(output: unknown, at: string): string | Json[] {
  if (typeof output === 'string') return output
  if (Array.isArray(output)) {
    const parts = partsToHub(output as Json[], `${at}.output`, 'tool')
    return parts
  }
  if (output === undefined || output === null) throw invalid(`${at}.output`, `Missing required parameter: '${at}.output'.`)
  return JSON.stringify(output)
}

// ---------------------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------------------

/** What a `response` object repeats of its request, and the ids the gateway gave it. */
export interface ResponseFrame {
  readonly id: string
  readonly createdAt: number
  readonly model: string
  readonly request: Json
  readonly tools: ToolNames
  /** Output item ids are `<kind>_<base><n>`: fixed per response, so a stream and the stored copy agree. */
  readonly itemBase: string
}

/** The `response` object around some output (the shape the SDK types as `Response`). */
export function responseObject(f: ResponseFrame, status: string, output: Json[], usage: Json | null, incomplete: Json | null = null, error: Json | null = null): Json {
  const r = f.request
  const text = (r.text as Json | undefined) ?? {}
  return {
    id: f.id,
    object: 'response',
    created_at: f.createdAt,
    status,
    background: false,
    error,
    incomplete_details: incomplete,
    instructions: typeof r.instructions === 'string' ? r.instructions : null,
    max_output_tokens: typeof r.max_output_tokens === 'number' ? r.max_output_tokens : null,
    max_tool_calls: typeof r.max_tool_calls === 'number' ? r.max_tool_calls : null,
    model: f.model,
    output,
    parallel_tool_calls: r.parallel_tool_calls !== false,
    previous_response_id: typeof r.previous_response_id === 'string' ? r.previous_response_id : null,
    prompt_cache_key: typeof r.prompt_cache_key === 'string' ? r.prompt_cache_key : null,
    reasoning: { effort: ((r.reasoning as Json | undefined)?.effort as string | undefined) ?? null, summary: ((r.reasoning as Json | undefined)?.summary as string | undefined) ?? null },
    safety_identifier: typeof r.safety_identifier === 'string' ? r.safety_identifier : null,
    service_tier: 'default',
    store: r.store !== false,
    temperature: typeof r.temperature === 'number' ? r.temperature : 1,
    text: { format: (text.format as Json | undefined) ?? { type: 'text' }, verbosity: (text.verbosity as string | undefined) ?? 'medium' },
    tool_choice: r.tool_choice ?? 'auto',
    tools: Array.isArray(r.tools) ? r.tools : [],
    top_p: typeof r.top_p === 'number' ? r.top_p : 1,
    truncation: typeof r.truncation === 'string' ? r.truncation : 'disabled',
    usage,
    user: typeof r.user === 'string' ? r.user : null,
    metadata: r.metadata && typeof r.metadata === 'object' ? r.metadata : {},
  }
}

/** Hub usage → Responses usage. */
export function responsesUsage(u: unknown): Json {
  const x = (u ?? {}) as Json
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0)
  const input = num(x.prompt_tokens)
  const output = num(x.completion_tokens)
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: num((x.prompt_tokens_details as Json | undefined)?.cached_tokens) },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: num((x.completion_tokens_details as Json | undefined)?.reasoning_tokens) },
    total_tokens: num(x.total_tokens) || input + output,
  }
}

/** Hub finish reason → the response's status and incomplete_details. */
export function statusOf(finish: unknown): { status: string; incomplete: Json | null } {
  if (finish === 'length') return { status: 'incomplete', incomplete: { reason: 'max_output_tokens' } }
  if (finish === 'content_filter') return { status: 'incomplete', incomplete: { reason: 'content_filter' } }
  return { status: 'completed', incomplete: null }
}

export const itemId = (f: ResponseFrame, kind: 'msg' | 'rs' | 'fc' | 'ctc', n: number): string => `${kind}_${f.itemBase}${n.toString(16).padStart(2, '0')}`

/** One reasoning item from thinking blocks / reasoning text (encrypted_content carries the blocks). */
export function reasoningItem(id: string, text: string, blocks: readonly ThinkingBlock[] | null): Json {
  const item: Json = { id, type: 'reasoning', summary: text ? [{ type: 'summary_text', text }] : [] }
  if (blocks && blocks.length) item.encrypted_content = encodeReasoning(blocks)
  return item
}

export function messageItem(id: string, text: string, status: string): Json {
  return { id, type: 'message', status, role: 'assistant', content: [{ type: 'output_text', annotations: [], logprobs: [], text }] }
}

/** A hub tool call → a function_call (or custom_tool_call) item, names un-flattened. */
export function callItem(f: ResponseFrame, n: number, callId: string, hubName: string, args: string, status: string): Json {
  if (f.tools.custom.has(hubName)) {
    let input = args
    try {
      const v = JSON.parse(args) as Json
      if (v && typeof v.input === 'string') input = v.input
    } catch { /* a backend's broken JSON stays visible as it came */ }
    const ns = f.tools.namespaced.get(hubName)
    return { id: itemId(f, 'ctc', n), type: 'custom_tool_call', status, call_id: callId, name: ns ? ns.name : hubName, input, ...(ns ? { namespace: ns.namespace } : {}) }
  }
  const ns = f.tools.namespaced.get(hubName)
  return { id: itemId(f, 'fc', n), type: 'function_call', status, arguments: args, call_id: callId, name: ns ? ns.name : hubName, ...(ns ? { namespace: ns.namespace } : {}) }
}

/** A hub `chat.completion` → the output items and status of a `response`. */
export function hubToResponseOutput(hub: Json, f: ResponseFrame): { output: Json[]; status: string; incomplete: Json | null; usage: Json } {
  const choice = ((hub.choices as Json[] | undefined) ?? [])[0] ?? {}
  const m = (choice.message ?? {}) as Json
  const { status, incomplete } = statusOf(choice.finish_reason)
  const output: Json[] = []
  let n = 0
  const blocks = Array.isArray(m.thinking_blocks) ? (m.thinking_blocks as ThinkingBlock[]) : null
  const reasoning = typeof m.reasoning_content === 'string' ? m.reasoning_content : blocks ? blocks.map((b) => b.thinking ?? '').join('') : ''
  if (reasoning || (blocks && blocks.length)) output.push(reasoningItem(itemId(f, 'rs', n++), reasoning, blocks))
  const text = typeof m.content === 'string' ? m.content : Array.isArray(m.content) ? (m.content as Json[]).map((p) => String(p.text ?? '')).join('') : ''
  const said = text !== '' ? text : typeof m.refusal === 'string' ? m.refusal : ''
  if (said !== '' || !Array.isArray(m.tool_calls) || (m.tool_calls as Json[]).length === 0) output.push(messageItem(itemId(f, 'msg', n++), said, status))
  if (Array.isArray(m.tool_calls)) {
    for (const c of m.tool_calls as Json[]) {
      const fn = (c.function ?? {}) as Json
      output.push(callItem(f, n++, String(c.id ?? ''), String(fn.name ?? ''), typeof fn.arguments === 'string' ? fn.arguments : '', 'completed'))
    }
  }
  return { output, status, incomplete, usage: responsesUsage(hub.usage) }
}

/** The output as the client sees it: reasoning's encrypted_content only when `include` asks for it (as OpenAI). */
export function clientOutput(output: readonly Json[], request: Json): Json[] {
  const include = Array.isArray(request.include) && request.include.includes('reasoning.encrypted_content')
  if (include) return output as Json[]
  return output.map((it) => {
    if (it.type !== 'reasoning' || it.encrypted_content === undefined) return it
    const { encrypted_content: _e, ...rest } = it
    return rest
  })
}
