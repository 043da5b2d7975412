import { GatewayError, GW_ERR } from '../core/errors.ts'
import type { ThinkingBlock } from './hub.ts'
import { bedrockDecoder, finishReason, usageOf } from './openai-to-bedrock-stream.ts'
import type { BackendCodec, TranslateContext, TranslatedError, TranslatedRequest } from './types.ts'

/**
 * Hub (OpenAI Chat Completions + extensions) ⇄ Amazon Bedrock Converse / ConverseStream.
 * The model id travels in the URL (providers/bedrock.ts), so the body has none. Every mapping is listed in
 * docs/translation.md; a hub field Converse cannot keep is a 400 naming it.
 */

type Json = Record<string, unknown>

const bad = (param: string, message: string): GatewayError => new GatewayError(GW_ERR.INVALID_REQUEST, message, { param })

/** Fields with no Converse equivalent that only hint (or concern the gateway), dropped and named in x-sluice-omitted. */
const SAFE_TO_OMIT = new Set(['seed', 'user', 'metadata', 'store', 'service_tier', 'prompt_cache_key', 'safety_identifier', 'stream_options', 'modalities', 'verbosity', 'prediction', 'web_search_options', 'audio'])
/** Hub fields this codec reads. */
const KNOWN = new Set(['model', 'messages', 'stream', 'max_tokens', 'max_completion_tokens', 'temperature', 'top_p', 'top_k', 'stop', 'tools', 'tool_choice', 'parallel_tool_calls', 'response_format', 'n', 'thinking', 'reasoning_effort', 'frequency_penalty', 'presence_penalty', 'logit_bias', 'logprobs', 'top_logprobs'])

/** Claude on Bedrock takes Anthropic's `thinking`; these budgets stand for OpenAI's reasoning_effort levels. */
const EFFORT_BUDGET: Record<string, number> = { minimal: 1024, low: 2048, medium: 8192, high: 16384 }

const IMAGE_FORMATS: Record<string, string> = { 'image/png': 'png', 'image/jpeg': 'jpeg', 'image/jpg': 'jpeg', 'image/gif': 'gif', 'image/webp': 'webp' }

function isClaude(modelId: string): boolean {
  return /(^|[.:/])anthropic\.|claude/i.test(modelId)
}

// ---------------------------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------------------------

const CACHE_POINT = { cachePoint: { type: 'default' } }

function hasCacheMark(x: unknown): boolean {
  return !!x && typeof x === 'object' && (x as Json).cache_control !== undefined && (x as Json).cache_control !== null
}

/** `data:image/png;base64,...` → a Converse image block; anything else cannot be sent (Converse wants bytes). */
function imageBlock(url: unknown, param: string): Json {
  if (typeof url !== 'string') throw bad(param, `${param} must be a string.`)
  const m = /^data:([^;,]+);base64,(.*)$/s.exec(url)
  if (!m) throw bad(param, `${param}: Bedrock Converse takes images as bytes; give a base64 data: URL (http(s) URLs are not fetched by the gateway).`)
  const format = IMAGE_FORMATS[m[1]!.toLowerCase()]
  if (!format) throw bad(param, `${param}: image type ${m[1]} is not one Bedrock takes (png, jpeg, gif, webp).`)
  return { image: { format, source: { bytes: m[2]!.replace(/\s+/g, '') } } }
}

/** Hub content (string or parts) → Converse blocks; `allowImages` false for system prompts. */
function contentBlocks(content: unknown, param: string, allowImages: boolean): Json[] {
  if (content === null || content === undefined) return []
  if (typeof content === 'string') return content === '' ? [] : [{ text: content }]
  if (!Array.isArray(content)) throw bad(param, `${param} must be a string or an array of content parts.`)
  const out: Json[] = []
  content.forEach((part: unknown, j) => {
    const p = part as Json
    const at = `${param}[${j}]`
    if (!p || typeof p !== 'object') throw bad(at, `${at} must be a content part object.`)
    if (p.type === 'text') {
      if (typeof p.text !== 'string') throw bad(`${at}.text`, `${at}.text must be a string.`)
      if (p.text !== '') out.push({ text: p.text })
    } else if (p.type === 'image_url' && allowImages) {
      const iu = p.image_url as Json | string | undefined
      out.push(imageBlock(typeof iu === 'string' ? iu : iu?.url, `${at}.image_url.url`))
    } else {
      throw bad(`${at}.type`, `${at}: content part type ${JSON.stringify(String(p.type)).slice(0, 60)} cannot be sent to Bedrock Converse${allowImages ? '' : ' here'}.`)
    }
    if (hasCacheMark(p)) out.push(CACHE_POINT)
  })
  return out
}

function toolResultContent(content: unknown, param: string): Json[] {
  const blocks = contentBlocks(content, param, true).filter((b) => !('cachePoint' in b))
  return blocks.length ? blocks : [{ text: '' }]
}

function reasoningBlocks(msg: Json, param: string): Json[] {
  const blocks = msg.thinking_blocks
  if (blocks === undefined || blocks === null) return []
  if (!Array.isArray(blocks)) throw bad(`${param}.thinking_blocks`, `${param}.thinking_blocks must be an array.`)
  return blocks.map((b: ThinkingBlock, k) => {
    if (b?.type === 'thinking') {
      const reasoningText: Json = { text: typeof b.thinking === 'string' ? b.thinking : '' }
      if (typeof b.signature === 'string') reasoningText.signature = b.signature
      return { reasoningContent: { reasoningText } }
    }
    if (b?.type === 'redacted_thinking' && typeof b.data === 'string') return { reasoningContent: { redactedContent: b.data } }
    throw bad(`${param}.thinking_blocks[${k}]`, `${param}.thinking_blocks[${k}] is not a thinking or redacted_thinking block.`)
  })
}

function assistantBlocks(msg: Json, param: string, omitted: Set<string>): Json[] {
  const out = reasoningBlocks(msg, param)
  if (out.length === 0 && typeof msg.reasoning_content === 'string' && msg.reasoning_content !== '') {
    // Reasoning text without its signature cannot be replayed to a model that checks signatures.
    omitted.add('messages[].reasoning_content')
  }
  out.push(...contentBlocks(msg.content, `${param}.content`, false))
  if (typeof msg.refusal === 'string' && msg.refusal !== '' && !msg.content) out.push({ text: msg.refusal })
  const calls = msg.tool_calls
  if (Array.isArray(calls)) {
    calls.forEach((c: Json, k) => {
      const at = `${param}.tool_calls[${k}]`
      const fn = c?.function as Json | undefined
      if (!c || c.type !== 'function' || !fn || typeof fn.name !== 'string') throw bad(at, `${at} must be a function tool call with a name.`)
      let input: unknown = {}
      const args = fn.arguments
      if (typeof args === 'string' && args.trim() !== '') {
        try {
          input = JSON.parse(args)
        } catch {
          throw bad(`${at}.function.arguments`, `${at}.function.arguments is not valid JSON; Bedrock needs the tool input as a JSON object.`)
        }
      }
      if (!input || typeof input !== 'object' || Array.isArray(input)) throw bad(`${at}.function.arguments`, `${at}.function.arguments must be a JSON object for Bedrock.`)
      out.push({ toolUse: { toolUseId: String(c.id ?? `call_${k}`), name: fn.name, input } })
    })
  }
  return out
}

interface Converted { readonly system: Json[]; readonly messages: Json[]; readonly usesTools: boolean }

function convertMessages(hub: unknown, omitted: Set<string>): Converted {
  if (!Array.isArray(hub) || hub.length === 0) throw bad('messages', 'messages must be a non-empty array.')
  const system: Json[] = []
  const messages: { role: string; content: Json[] }[] = []
  let usesTools = false
  const push = (role: string, content: Json[]) => {
    if (content.length === 0) return
    const last = messages[messages.length - 1]
    // Converse wants user and assistant turns to alternate: consecutive same-role messages merge.
    if (last && last.role === role) last.content.push(...content)
    else messages.push({ role, content: [...content] })
  }
  hub.forEach((m: Json, i) => {
    const at = `messages[${i}]`
    if (!m || typeof m !== 'object') throw bad(at, `${at} must be an object.`)
    if (typeof m.name === 'string') omitted.add('messages[].name')
    switch (m.role) {
      case 'system':
      case 'developer':
        system.push(...contentBlocks(m.content, `${at}.content`, false))
        return
      case 'user':
        return push('user', contentBlocks(m.content, `${at}.content`, true))
      case 'assistant': {
        const blocks = assistantBlocks(m, at, omitted)
        if (blocks.some((b) => 'toolUse' in b)) usesTools = true
        return push('assistant', blocks)
      }
      case 'tool': {
        if (typeof m.tool_call_id !== 'string') throw bad(`${at}.tool_call_id`, `${at}.tool_call_id is required.`)
        usesTools = true
        return push('user', [{ toolResult: { toolUseId: m.tool_call_id, content: toolResultContent(m.content, `${at}.content`) } }])
      }
      default:
        throw bad(`${at}.role`, `${at}.role ${JSON.stringify(String(m.role)).slice(0, 40)} cannot be sent to Bedrock Converse.`)
    }
  })
  if (messages.length === 0) throw bad('messages', 'messages must hold at least one user or assistant message.')
  return { system, messages, usesTools }
}

function toolConfig(body: Json, usesTools: boolean, omitted: Set<string>): Json | undefined {
  const tools = body.tools
  const choice = body.tool_choice
  if (tools === undefined || tools === null || (Array.isArray(tools) && tools.length === 0)) {
    if (choice !== undefined && choice !== null && choice !== 'none' && choice !== 'auto') throw bad('tool_choice', 'tool_choice needs tools.')
    return undefined
  }
  if (!Array.isArray(tools)) throw bad('tools', 'tools must be an array.')
  const specs: Json[] = []
  tools.forEach((t: Json, i) => {
    const at = `tools[${i}]`
    const fn = t?.function as Json | undefined
    if (!t || t.type !== 'function' || !fn) throw bad(`${at}.type`, `${at}: only function tools can be sent to Bedrock Converse.`)
    if (typeof fn.name !== 'string' || fn.name === '') throw bad(`${at}.function.name`, `${at}.function.name is required.`)
    const params = fn.parameters ?? { type: 'object', properties: {} }
    if (typeof params !== 'object' || Array.isArray(params) || (params as Json).type !== 'object') {
      throw bad(`${at}.function.parameters`, `${at}.function.parameters must be a JSON schema of type "object" for Bedrock.`)
    }
    if (fn.strict === true) omitted.add('tools[].function.strict')
    const toolSpec: Json = { name: fn.name, inputSchema: { json: params } }
    if (typeof fn.description === 'string' && fn.description !== '') toolSpec.description = fn.description
    specs.push({ toolSpec })
    if (hasCacheMark(t)) specs.push(CACHE_POINT)
  })
  const config: Json = { tools: specs }
  if (choice === undefined || choice === null || choice === 'auto') config.toolChoice = { auto: {} }
  else if (choice === 'required') config.toolChoice = { any: {} }
  else if (choice === 'none') {
    // Converse has no "none": without tools in the history, leaving them out means the same thing.
    if (usesTools) throw bad('tool_choice', 'tool_choice "none" cannot be kept by Bedrock Converse when the conversation already uses tools.')
    return undefined
  } else if (typeof choice === 'object' && (choice as Json).type === 'function' && typeof ((choice as Json).function as Json | undefined)?.name === 'string') {
    config.toolChoice = { tool: { name: ((choice as Json).function as Json).name } }
  } else throw bad('tool_choice', 'tool_choice must be "auto", "required", "none" or a function.')
  return config
}

function inferenceConfig(body: Json): Json | undefined {
  const cfg: Json = {}
  const max = body.max_completion_tokens ?? body.max_tokens
  if (max !== undefined && max !== null) {
    if (typeof max !== 'number' || !Number.isInteger(max) || max < 1) throw bad(body.max_completion_tokens !== undefined ? 'max_completion_tokens' : 'max_tokens', 'max_tokens must be a positive integer.')
    cfg.maxTokens = max
  }
  for (const [from, to] of [['temperature', 'temperature'], ['top_p', 'topP']] as const) {
    const v = body[from]
    if (v === undefined || v === null) continue
    if (typeof v !== 'number') throw bad(from, `${from} must be a number.`)
    cfg[to] = v
  }
  const stop = body.stop
  if (stop !== undefined && stop !== null) {
    const list = typeof stop === 'string' ? [stop] : stop
    if (!Array.isArray(list) || !list.every((s) => typeof s === 'string')) throw bad('stop', 'stop must be a string or an array of strings.')
    if (list.length) cfg.stopSequences = list
  }
  return Object.keys(cfg).length ? cfg : undefined
}

function additionalFields(body: Json, modelId: string): Json | undefined {
  const extra: Json = {}
  if (body.top_k !== undefined && body.top_k !== null) {
    if (typeof body.top_k !== 'number' || !Number.isInteger(body.top_k) || body.top_k < 0) throw bad('top_k', 'top_k must be a non-negative integer.')
    extra.top_k = body.top_k
  }
  const thinking = body.thinking as Json | undefined
  if (thinking !== undefined && thinking !== null) {
    if (thinking.type === 'enabled') {
      if (typeof thinking.budget_tokens !== 'number' || !Number.isInteger(thinking.budget_tokens)) throw bad('thinking.budget_tokens', 'thinking.budget_tokens must be an integer.')
      extra.thinking = { type: 'enabled', budget_tokens: thinking.budget_tokens }
    } else if (thinking.type === 'disabled') {
      // The default: nothing to send.
    } else if (thinking.type === 'adaptive' && isClaude(modelId)) {
      // Claude's adaptive thinking: Bedrock hands additionalModelRequestFields to the model as they are.
      extra.thinking = { ...thinking }
    } else throw bad('thinking.type', 'thinking.type must be "enabled" or "disabled" (or "adaptive" for Claude models).')
  } else if (typeof body.reasoning_effort === 'string') {
    const effort = body.reasoning_effort
    if (isClaude(modelId)) {
      const budget = EFFORT_BUDGET[effort]
      if (budget !== undefined) extra.thinking = { type: 'enabled', budget_tokens: budget }
      else if (effort !== 'none') throw bad('reasoning_effort', 'reasoning_effort must be none, minimal, low, medium or high.')
    } else if (effort !== 'none') {
      // Amazon Nova and the other Converse models with reasoning take reasoningConfig.
      extra.reasoningConfig = { type: 'enabled', maxReasoningEffort: effort === 'minimal' ? 'low' : effort }
    }
  }
  return Object.keys(extra).length ? extra : undefined
}

function refuseUnkeepable(body: Json): void {
  if (body.n !== undefined && body.n !== null && body.n !== 1) throw bad('n', 'Bedrock Converse answers one choice; n must be 1.')
  for (const k of ['frequency_penalty', 'presence_penalty'] as const) {
    if (body[k] !== undefined && body[k] !== null && body[k] !== 0) throw bad(k, `${k} has no equivalent in Bedrock Converse.`)
  }
  if (body.logit_bias && typeof body.logit_bias === 'object' && Object.keys(body.logit_bias).length) throw bad('logit_bias', 'logit_bias has no equivalent in Bedrock Converse.')
  if (body.logprobs === true || (typeof body.top_logprobs === 'number' && body.top_logprobs > 0)) throw bad('logprobs', 'Bedrock Converse does not return log probabilities.')
  if (body.parallel_tool_calls === false) throw bad('parallel_tool_calls', 'Bedrock Converse cannot be told to make at most one tool call.')
  const rf = body.response_format as Json | undefined
  if (rf !== undefined && rf !== null && rf.type !== 'text') {
    throw bad('response_format', 'Bedrock Converse has no JSON mode; describe the JSON in the prompt or use a tool with tool_choice.')
  }
}

export function bedrockRequest(body: Json, tc: TranslateContext): TranslatedRequest {
  const omitted = new Set<string>()
  refuseUnkeepable(body)
  for (const k of Object.keys(body)) {
    if (KNOWN.has(k) || body[k] === undefined || body[k] === null) continue
    if (SAFE_TO_OMIT.has(k)) omitted.add(k)
    else omitted.add(k.slice(0, 64))
  }
  const { system, messages, usesTools } = convertMessages(body.messages, omitted)
  const out: Json = { messages }
  if (system.length) out.system = system
  const inference = inferenceConfig(body)
  if (inference) out.inferenceConfig = inference
  const tools = toolConfig(body, usesTools, omitted)
  if (tools) out.toolConfig = tools
  const extra = additionalFields(body, tc.upstreamModel)
  if (extra) out.additionalModelRequestFields = extra
  return { body: out, omitted: [...omitted] }
}

// ---------------------------------------------------------------------------------------------
// Response
// ---------------------------------------------------------------------------------------------

export function bedrockResponse(body: Json, tc: TranslateContext): Json {
  const message = ((body.output as Json | undefined)?.message ?? {}) as Json
  const blocks = Array.isArray(message.content) ? (message.content as Json[]) : []
  let text = ''
  let reasoning = ''
  const thinking: ThinkingBlock[] = []
  const toolCalls: Json[] = []
  for (const b of blocks) {
    if (!b || typeof b !== 'object') continue
    if (typeof b.text === 'string') text += b.text
    else if (b.toolUse && typeof b.toolUse === 'object') {
      const t = b.toolUse as Json
      toolCalls.push({ id: String(t.toolUseId ?? ''), type: 'function', function: { name: String(t.name ?? ''), arguments: JSON.stringify(t.input ?? {}) } })
    } else if (b.reasoningContent && typeof b.reasoningContent === 'object') {
      const r = b.reasoningContent as Json
      const rt = r.reasoningText as Json | undefined
      if (rt && typeof rt.text === 'string') {
        reasoning += rt.text
        thinking.push(typeof rt.signature === 'string' ? { type: 'thinking', thinking: rt.text, signature: rt.signature } : { type: 'thinking', thinking: rt.text })
      } else if (typeof r.redactedContent === 'string') thinking.push({ type: 'redacted_thinking', data: r.redactedContent })
    }
  }
  const msg: Json = { role: 'assistant', content: text === '' && toolCalls.length ? null : text, refusal: null }
  if (toolCalls.length) msg.tool_calls = toolCalls
  if (reasoning !== '') msg.reasoning_content = reasoning
  if (thinking.length) msg.thinking_blocks = thinking
  return {
    id: `chatcmpl-${tc.requestId}`,
    object: 'chat.completion',
    created: tc.created,
    model: tc.publicModel,
    choices: [{ index: 0, message: msg, logprobs: null, finish_reason: finishReason(body.stopReason) }],
    usage: usageOf(body.usage),
  }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/**
 * The AWS error type: the `x-amzn-errortype` header (`ThrottlingException:http://internal.amazon.com/...`),
 * else the body's `__type` (`com.amazon.coral.service#ThrottlingException`) or `code`.
 */
export function awsErrorType(body: Json, headers?: Readonly<Record<string, string>>): string {
  const raw = headers?.['x-amzn-errortype'] ?? (typeof body.__type === 'string' ? body.__type : typeof body.code === 'string' ? body.code : '')
  let t = raw.split(':')[0]!
  const hash = t.lastIndexOf('#')
  if (hash !== -1) t = t.slice(hash + 1)
  return t.trim().slice(0, 80)
}

const ERROR_TYPES: Record<string, { type: string; retriable: boolean }> = {
  ThrottlingException: { type: 'rate_limit_error', retriable: true },
  ServiceQuotaExceededException: { type: 'rate_limit_error', retriable: false },
  ServiceUnavailableException: { type: 'overloaded_error', retriable: true },
  ModelNotReadyException: { type: 'overloaded_error', retriable: true },
  ModelTimeoutException: { type: 'timeout_error', retriable: true },
  InternalServerException: { type: 'api_error', retriable: true },
  ModelErrorException: { type: 'api_error', retriable: true },
  ModelStreamErrorException: { type: 'api_error', retriable: true },
  ValidationException: { type: 'invalid_request_error', retriable: false },
  ResourceNotFoundException: { type: 'invalid_request_error', retriable: false },
  AccessDeniedException: { type: 'permission_error', retriable: false },
  UnrecognizedClientException: { type: 'authentication_error', retriable: false },
  InvalidSignatureException: { type: 'authentication_error', retriable: false },
}

export function bedrockError(status: number, body: Json, headers?: Readonly<Record<string, string>>): TranslatedError {
  const code = awsErrorType(body, headers) || null
  const known = code ? ERROR_TYPES[code] : undefined
  const msg = typeof body.message === 'string' ? body.message : typeof body.Message === 'string' ? body.Message : `Bedrock answered ${status}${code ? ` (${code})` : ''}.`
  return {
    message: msg.slice(0, 1000),
    type: known?.type ?? (status >= 500 ? 'api_error' : 'invalid_request_error'),
    code,
    param: null,
    retriable: known?.retriable ?? status >= 500,
  }
}

export const bedrockCodec: BackendCodec = {
  schema: 'bedrock',
  request: bedrockRequest,
  response: bedrockResponse,
  decoder: bedrockDecoder,
  error: bedrockError,
}
