import type { Operation } from '../../core/context.ts'
import type { TextRole, TextSegment } from './types.ts'

export interface CheckScope {
  readonly system: boolean
  readonly tools: boolean
  readonly assistant: boolean
}

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v)

function roleOf(role: unknown): TextRole | null {
  switch (role) {
    case 'user': return 'user'
    case 'system': case 'developer': return 'system'
    case 'tool': case 'function': return 'tool'
    case 'assistant': return 'assistant'
    default: return null
  }
}

function wanted(role: TextRole, scope: CheckScope): boolean {
  return role === 'user' || (role === 'system' && scope.system) || (role === 'tool' && scope.tools) || (role === 'assistant' && scope.assistant)
}

/** A message's text: a string `content`, or the text parts of a content array. */
function pushContent(out: TextSegment[], role: TextRole, holder: Obj, key: string): void {
  const content = holder[key]
  if (typeof content === 'string') {
    out.push({ role, text: content, write: (t) => { holder[key] = t } })
  } else if (Array.isArray(content)) {
    for (const part of content) {
      if (isObj(part) && typeof part.text === 'string' && (part.type === 'text' || part.type === 'input_text' || part.type === 'output_text')) {
        out.push({ role, text: part.text, write: (t) => { part.text = t } })
      }
    }
  }
}

function pushStrings(out: TextSegment[], role: TextRole, holder: Obj, key: string): void {
  const v = holder[key]
  if (typeof v === 'string') out.push({ role, text: v, write: (t) => { holder[key] = t } })
  else if (Array.isArray(v)) v.forEach((item, i) => { if (typeof item === 'string') out.push({ role, text: item, write: (t) => { v[i] = t } }) })
}

/** The texts of a request that the policy checks, each writable for redaction. */
export function promptSegments(op: Operation, body: Obj, scope: CheckScope): TextSegment[] {
  const out: TextSegment[] = []
  if (op === 'chat.completions' && Array.isArray(body.messages)) {
    for (const m of body.messages) {
      if (!isObj(m)) continue
      const role = roleOf(m.role)
      if (role !== null && wanted(role, scope)) pushContent(out, role, m, 'content')
    }
  } else if (op === 'completions') {
    pushStrings(out, 'user', body, 'prompt')
  } else if (op === 'embeddings') {
    pushStrings(out, 'user', body, 'input')
  } else if (op === 'images.generations') {
    pushStrings(out, 'user', body, 'prompt') // media JSON bodies (src/media/): the text a user sent
  } else if (op === 'audio.speech') {
    pushStrings(out, 'user', body, 'input')
  } else if (op === 'responses') {
    if (scope.system) pushStrings(out, 'system', body, 'instructions')
    if (typeof body.input === 'string') pushStrings(out, 'user', body, 'input')
    else if (Array.isArray(body.input)) {
      for (const item of body.input) {
        if (!isObj(item)) continue
        if (item.type === 'function_call_output') { if (scope.tools) pushStrings(out, 'tool', item, 'output'); continue }
        const role = roleOf(item.role)
        if (role !== null && wanted(role, scope)) pushContent(out, role, item, 'content')
      }
    }
  }
  return out
}

/** The generated texts of a complete answer. */
export function completionSegments(op: Operation, body: Obj): TextSegment[] {
  const out: TextSegment[] = []
  if (Array.isArray(body.choices)) {
    for (const c of body.choices) {
      if (!isObj(c)) continue
      if (isObj(c.message)) pushContent(out, 'completion', c.message, 'content')
      else pushStrings(out, 'completion', c, 'text')
    }
  } else if (op === 'responses' && Array.isArray(body.output)) {
    for (const item of body.output) if (isObj(item)) pushContent(out, 'completion', item, 'content')
    if (typeof body.output_text === 'string') pushStrings(out, 'completion', body, 'output_text')
  }
  return out
}

/** The generated text one stream event carries (chat and legacy deltas, Responses text deltas). */
export function streamTextOf(json: Obj): string {
  if (Array.isArray(json.choices)) {
    let t = ''
    for (const c of json.choices) {
      if (!isObj(c)) continue
      const d = isObj(c.delta) ? c.delta.content : c.text
      if (typeof d === 'string') t += d
    }
    return t
  }
  if (json.type === 'response.output_text.delta' && typeof json.delta === 'string') return json.delta
  return ''
}

/** Replaces the text an event carries (the first choice's), for redaction of held stream events. */
export function setStreamText(json: Obj, text: string): boolean {
  if (Array.isArray(json.choices) && isObj(json.choices[0])) {
    const c = json.choices[0]
    if (isObj(c.delta) && typeof c.delta.content === 'string') { c.delta.content = text; return true }
    if (typeof c.text === 'string') { c.text = text; return true }
    return false
  }
  if (json.type === 'response.output_text.delta' && typeof json.delta === 'string') { json.delta = text; return true }
  return false
}
