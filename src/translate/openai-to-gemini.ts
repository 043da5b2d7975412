import { GatewayError, GW_ERR } from '../core/errors.ts'
import { jsonSchemaForGemini, toGeminiSchema, UnsupportedSchema } from './helpers/gemini-schema.ts'
import { googleError } from './helpers/google-error.ts'
import { geminiDecoder, geminiResponse } from './openai-to-gemini-response.ts'
import type { BackendCodec, TranslateContext, TranslatedRequest } from './types.ts'

/**
 * Hub (OpenAI chat) → Gemini `GenerateContentRequest` (Gemini API and Vertex AI speak the same body).
 * docs/translation.md lists every field; the rules in short:
 * - system/developer messages → `systemInstruction`; user → role `user`, assistant → role `model`; tool
 *   results → `functionResponse` parts in a `user` turn (consecutive results in one turn, as Gemini wants
 *   one response per call of the previous turn). Gemini has no call ids: a result finds its function name
 *   through the assistant tool call with its `tool_call_id`.
 * - images: `data:` URLs → `inlineData`; any other URL (https, gs://, Files API) → `fileData` with the MIME
 *   type from the URL's extension (a 400 when there is none to read).
 * - tool and response schemas → Gemini's OpenAPI subset (helpers/gemini-schema.ts; unsupported keyword → 400).
 * - `thinking` / `reasoning_effort` → `thinkingConfig` (thought summaries requested, they come back as
 *   `reasoning_content`); `tool_calls[].extra_content.google.thought_signature` → the part's `thoughtSignature`.
 */

type Json = Record<string, unknown>

/** Hub fields dropped by the safe-omission rule (a hint Gemini has no knob for); named in x-sluice-omitted. */
const OMIT_TOP: ReadonlySet<string> = new Set(['user', 'metadata', 'store', 'service_tier', 'parallel_tool_calls', 'prompt_cache_key', 'safety_identifier'])
/** Hub fields that need no translation (handled by the path or always on). */
const SILENT_TOP: ReadonlySet<string> = new Set(['model', 'messages', 'stream', 'stream_options'])
/** reasoning_effort → thinking budget (Google's own OpenAI-compatibility mapping for Gemini 2.5). */
const EFFORT_BUDGET: Readonly<Record<string, number>> = { none: 0, minimal: 512, low: 1024, medium: 8192, high: 24576 }
const MIME_BY_EXT: Readonly<Record<string, string>> = {
  png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', webp: 'image/webp', gif: 'image/gif', heic: 'image/heic', heif: 'image/heif',
  pdf: 'application/pdf', mp3: 'audio/mp3', wav: 'audio/wav', mp4: 'video/mp4', txt: 'text/plain',
}
/**
 * The placeholder Google documents for a function call whose signature was never produced by Gemini (a
 * conversation that started on another provider): Gemini 3 refuses a current-turn call without one.
 */
export const SKIP_SIGNATURE = 'skip_thought_signature_validator'

function bad(param: string, message: string): never {
  throw new GatewayError(GW_ERR.INVALID_REQUEST, message, { param })
}

function isObj(v: unknown): v is Json {
  return !!v && typeof v === 'object' && !Array.isArray(v)
}

export function geminiRequest(hub: Json, _tc: TranslateContext): TranslatedRequest {
  const omitted: string[] = []
  const body: Json = {}
  const gen: Json = {}
  for (const key of Object.keys(hub)) {
    if (hub[key] === undefined || hub[key] === null) continue
    if (OMIT_TOP.has(key)) omitted.push(key)
  }
  const messages = hub.messages
  if (!Array.isArray(messages) || messages.length === 0) bad('messages', 'messages must be a non-empty array.')
  const { contents, system } = translateMessages(messages, omitted)
  body.contents = contents
  if (system.length) body.systemInstruction = { parts: system }

  for (const [key, v] of Object.entries(hub)) {
    if (v === undefined || v === null || SILENT_TOP.has(key) || OMIT_TOP.has(key)) continue
    switch (key) {
      case 'temperature': gen.temperature = num(v, key); break
      case 'top_p': gen.topP = num(v, key); break
      case 'top_k': gen.topK = num(v, key); break
      case 'presence_penalty': gen.presencePenalty = num(v, key); break
      case 'frequency_penalty': gen.frequencyPenalty = num(v, key); break
      case 'seed': gen.seed = num(v, key); break
      case 'n': gen.candidateCount = num(v, key); break
      case 'max_tokens': case 'max_completion_tokens': gen.maxOutputTokens = num(v, key); break
      case 'stop': {
        const list = typeof v === 'string' ? [v] : v
        if (!Array.isArray(list) || !list.every((s) => typeof s === 'string')) bad(key, 'stop must be a string or an array of strings.')
        if (list.length) gen.stopSequences = list
        break
      }
      case 'response_format': responseFormat(v, gen); break
      case 'tools': {
        const t = translateTools(v, omitted)
        if (t) body.tools = [t]
        break
      }
      case 'tool_choice': body.toolConfig = { functionCallingConfig: toolChoice(v) }; break
      case 'thinking': {
        if (!isObj(v)) bad(key, 'thinking must be an object.')
        if (v.type === 'disabled') gen.thinkingConfig = { thinkingBudget: 0 }
        else if (v.type === 'enabled') gen.thinkingConfig = { thinkingBudget: num(v.budget_tokens, 'thinking.budget_tokens'), includeThoughts: true }
        else if (v.type === 'adaptive') gen.thinkingConfig = { thinkingBudget: -1, includeThoughts: true }
        else bad('thinking.type', 'thinking.type must be "enabled", "disabled" or "adaptive".')
        break
      }
      case 'reasoning_effort': {
        const budget = typeof v === 'string' ? EFFORT_BUDGET[v] : undefined
        if (budget === undefined) bad(key, `reasoning_effort must be one of ${Object.keys(EFFORT_BUDGET).join(', ')}.`)
        gen.thinkingConfig = budget === 0 ? { thinkingBudget: 0 } : { thinkingBudget: budget, includeThoughts: true }
        break
      }
      case 'modalities':
        if (!Array.isArray(v) || v.some((m) => m !== 'text')) bad(key, 'Gemini backends answer in text only here; modalities other than "text" cannot be served.')
        break
      default:
        bad(key, `The field "${key.slice(0, 64)}" has no Gemini equivalent.`)
    }
  }
  if (Object.keys(gen).length) body.generationConfig = gen
  return { body, omitted }
}

function num(v: unknown, param: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) bad(param, `${param} must be a number.`)
  return v
}

function responseFormat(v: unknown, gen: Json): void {
  if (!isObj(v)) bad('response_format', 'response_format must be an object.')
  if (v.type === 'text') return
  if (v.type === 'json_object') {
    gen.responseMimeType = 'application/json'
    return
  }
  if (v.type === 'json_schema') {
    const js = v.json_schema
    if (!isObj(js)) bad('response_format.json_schema', 'response_format.json_schema must be an object.')
    gen.responseMimeType = 'application/json'
    if (js.schema === undefined) return
    const converted = subsetOrJson(js.schema, 'response_format.json_schema.schema')
    if ('subset' in converted) gen.responseSchema = converted.subset
    else gen.responseJsonSchema = converted.json
    return
  }
  bad('response_format.type', 'response_format.type must be "text", "json_object" or "json_schema".')
}

function translateTools(v: unknown, omitted: string[]): Json | null {
  if (!Array.isArray(v)) bad('tools', 'tools must be an array.')
  const decls: Json[] = []
  v.forEach((tool, i) => {
    if (!isObj(tool)) bad(`tools[${i}]`, 'A tool must be an object.')
    if (tool.type !== 'function') {
      // A hosted tool Gemini cannot run here: the documented safe omission.
      omitted.push(`tools[${i}]`)
      return
    }
    const fn = tool.function
    if (!isObj(fn) || typeof fn.name !== 'string' || !fn.name) bad(`tools[${i}].function.name`, 'A function tool needs a name.')
    if (tool.cache_control !== undefined || fn.cache_control !== undefined) omitted.push(`tools[${i}].cache_control`)
    const decl: Json = { name: fn.name }
    if (typeof fn.description === 'string') decl.description = fn.description
    if (fn.parameters !== undefined && fn.parameters !== null) {
      const converted = subsetOrJson(fn.parameters, `tools[${i}].function.parameters`)
      if ('json' in converted) decl.parametersJsonSchema = converted.json
      // Gemini refuses an OBJECT with no properties; a function without arguments simply has no parameters.
      else if (!(converted.subset.type === 'OBJECT' && (!isObj(converted.subset.properties) || Object.keys(converted.subset.properties).length === 0))) decl.parameters = converted.subset
    }
    decls.push(decl)
  })
  return decls.length ? { functionDeclarations: decls } : null
}

/**
 * Gemini's OpenAPI subset when the schema fits it (every Gemini model takes it); else the schema as JSON
 * Schema, which Gemini 2.5 and later read in `parametersJsonSchema` / `responseJsonSchema`.
 */
function subsetOrJson(schema: unknown, param: string): { subset: Json } | { json: Json } {
  try {
    return { subset: toGeminiSchema(schema, param) }
  } catch (e) {
    if (e instanceof UnsupportedSchema) return { json: jsonSchemaForGemini(schema as Json) }
    throw e
  }
}

function toolChoice(v: unknown): Json {
  if (v === 'auto') return { mode: 'AUTO' }
  if (v === 'none') return { mode: 'NONE' }
  if (v === 'required') return { mode: 'ANY' }
  if (isObj(v) && v.type === 'function' && isObj(v.function) && typeof v.function.name === 'string') {
    return { mode: 'ANY', allowedFunctionNames: [v.function.name] }
  }
  if (isObj(v) && v.type === 'allowed_tools' && isObj(v.allowed_tools)) {
    const at = v.allowed_tools
    const names = Array.isArray(at.tools) ? (at.tools as Json[]).map((t) => (isObj(t.function) ? t.function.name : undefined)).filter((n): n is string => typeof n === 'string') : []
    return { mode: at.mode === 'required' ? 'ANY' : 'AUTO', allowedFunctionNames: names }
  }
  bad('tool_choice', 'tool_choice must be "auto", "none", "required" or a named function.')
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

function translateMessages(messages: unknown[], omitted: string[]): { contents: Json[]; system: Json[] } {
  const contents: Json[] = []
  const system: Json[] = []
  const callNames = new Map<string, string>()
  const note = (path: string) => {
    if (!omitted.includes(path)) omitted.push(path)
  }
  const push = (role: 'user' | 'model', parts: Json[]) => {
    if (parts.length === 0) return
    const last = contents[contents.length - 1]
    // Gemini wants turns to alternate; consecutive messages of one role become one turn.
    if (last && last.role === role) (last.parts as Json[]).push(...parts)
    else contents.push({ role, parts })
  }
  messages.forEach((m, i) => {
    const at = `messages[${i}]`
    if (!isObj(m)) bad(at, 'A message must be an object.')
    if (m.name !== undefined && m.role !== 'tool' && m.role !== 'function') note('messages[].name')
    switch (m.role) {
      case 'system':
      case 'developer':
        system.push(...contentParts(m.content, at, note, true))
        return
      case 'user':
        push('user', contentParts(m.content, at, note, false))
        return
      case 'assistant': {
        const parts: Json[] = []
        if (typeof m.reasoning_content === 'string' && m.reasoning_content) note('messages[].reasoning_content')
        if (Array.isArray(m.thinking_blocks) && m.thinking_blocks.length) note('messages[].thinking_blocks')
        if (m.content !== undefined && m.content !== null) parts.push(...contentParts(m.content, at, note, false))
        if (m.tool_calls !== undefined && m.tool_calls !== null) {
          if (!Array.isArray(m.tool_calls)) bad(`${at}.tool_calls`, 'tool_calls must be an array.')
          m.tool_calls.forEach((tc, j) => {
            const tat = `${at}.tool_calls[${j}]`
            if (!isObj(tc) || !isObj(tc.function) || typeof tc.function.name !== 'string') bad(tat, 'A tool call needs function.name.')
            const args = parseArgs(tc.function.arguments, `${tat}.function.arguments`)
            if (typeof tc.id === 'string') callNames.set(tc.id, tc.function.name)
            const part: Json = { functionCall: { name: tc.function.name, args } }
            const sig = isObj(tc.extra_content) && isObj(tc.extra_content.google) ? tc.extra_content.google.thought_signature : undefined
            if (typeof sig === 'string' && sig) part.thoughtSignature = sig
            else if (j === 0) part.thoughtSignature = SKIP_SIGNATURE
            parts.push(part)
          })
        }
        if (parts.length === 0) parts.push({ text: '' })
        push('model', parts)
        return
      }
      case 'tool':
      case 'function': {
        const id = typeof m.tool_call_id === 'string' ? m.tool_call_id : undefined
        const name = m.role === 'function' ? m.name : id !== undefined ? callNames.get(id) : undefined
        if (typeof name !== 'string') bad(`${at}.tool_call_id`, `${at}.tool_call_id does not match a tool call of an earlier assistant message; Gemini needs the function name.`)
        push('user', [{ functionResponse: { name, response: toolResponse(m.content, at) } }])
        return
      }
      default:
        bad(`${at}.role`, `${at}.role "${String(m.role).slice(0, 32)}" is not a chat role.`)
    }
  })
  return { contents, system }
}

function parseArgs(v: unknown, param: string): Json {
  if (v === undefined || v === null || v === '') return {}
  if (isObj(v)) return v
  if (typeof v !== 'string') bad(param, `${param} must be a JSON string.`)
  let parsed: unknown
  try {
    parsed = JSON.parse(v)
  } catch {
    bad(param, `${param} is not valid JSON.`)
  }
  if (!isObj(parsed)) bad(param, `${param} must be a JSON object (Gemini function arguments are an object).`)
  return parsed
}

/** A tool result as Gemini's `response` object: a JSON object stays one; anything else is its `output`. */
function toolResponse(content: unknown, at: string): Json {
  let text: string
  if (typeof content === 'string') text = content
  else if (Array.isArray(content)) {
    text = content.map((p, j) => {
      if (isObj(p) && p.type === 'text' && typeof p.text === 'string') return p.text
      bad(`${at}.content[${j}]`, 'A tool result holds text parts only.')
    }).join('')
  } else if (content === undefined || content === null) text = ''
  else bad(`${at}.content`, 'A tool result content is a string or text parts.')
  if (text.startsWith('{')) {
    try {
      const parsed: unknown = JSON.parse(text)
      if (isObj(parsed)) return parsed
    } catch { /* plain text that starts with a brace */ }
  }
  return { output: text }
}

function contentParts(content: unknown, at: string, note: (p: string) => void, textOnly: boolean): Json[] {
  if (typeof content === 'string') return content === '' ? [] : [{ text: content }]
  if (content === undefined || content === null) return []
  if (!Array.isArray(content)) bad(`${at}.content`, 'content must be a string or an array of parts.')
  const parts: Json[] = []
  content.forEach((p, j) => {
    const pat = `${at}.content[${j}]`
    if (!isObj(p)) bad(pat, 'A content part must be an object.')
    if (p.cache_control !== undefined) note('messages[].content[].cache_control')
    if (p.type === 'text' || p.type === 'refusal') {
      const text = p.type === 'text' ? p.text : p.refusal
      if (typeof text !== 'string') bad(pat, 'A text part needs text.')
      parts.push({ text })
      return
    }
    if (textOnly) bad(`${pat}.type`, `${pat}: system instructions hold text parts only.`)
    if (p.type === 'image_url') {
      const url = isObj(p.image_url) ? p.image_url.url : undefined
      if (typeof url !== 'string') bad(`${pat}.image_url.url`, 'An image part needs image_url.url.')
      parts.push(mediaPart(url, `${pat}.image_url.url`))
      return
    }
    if (p.type === 'input_audio') {
      const a = p.input_audio
      if (!isObj(a) || typeof a.data !== 'string' || (a.format !== 'wav' && a.format !== 'mp3')) bad(`${pat}.input_audio`, 'An audio part needs base64 data and format wav or mp3.')
      parts.push({ inlineData: { mimeType: `audio/${a.format}`, data: a.data } })
      return
    }
    if (p.type === 'file') {
      const f = p.file
      if (!isObj(f) || typeof f.file_data !== 'string') bad(`${pat}.file`, 'A file part needs file.file_data (a data: URL); OpenAI file ids cannot be read by Gemini.')
      parts.push(mediaPart(f.file_data, `${pat}.file.file_data`))
      return
    }
    bad(`${pat}.type`, `${pat}: the content part type "${String(p.type).slice(0, 32)}" has no Gemini equivalent.`)
  })
  return parts
}

const DATA_URL = /^data:([\w.+-]+\/[\w.+-]+)(?:;[^,]*)?;base64,/

function mediaPart(url: string, param: string): Json {
  if (url.startsWith('data:')) {
    const m = DATA_URL.exec(url)
    if (!m) bad(param, `${param}: a data: URL must be base64 with a MIME type (data:image/png;base64,...).`)
    return { inlineData: { mimeType: m[1], data: url.slice(m[0].length) } }
  }
  let ext = ''
  try {
    const u = new URL(url)
    ext = (/\.([a-z0-9]+)$/i.exec(u.pathname)?.[1] ?? '').toLowerCase()
  } catch {
    bad(param, `${param} is neither a data: URL nor a URL.`)
  }
  const mimeType = MIME_BY_EXT[ext]
  if (!mimeType) bad(param, `${param}: Gemini needs the MIME type of a file it fetches; use a data: URL, or a URL ending in ${Object.keys(MIME_BY_EXT).join(', ')}.`)
  return { fileData: { mimeType, fileUri: url } }
}

export const geminiCodec: BackendCodec = {
  schema: 'gemini',
  request: geminiRequest,
  response: geminiResponse,
  decoder: geminiDecoder,
  error: googleError,
}
