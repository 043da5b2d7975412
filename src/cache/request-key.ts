import { sha256Hex } from '../core/sha256.ts'

/**
 * Request fields that never change the answer: transport (`stream`, `stream_options`), attribution (`user`,
 * `metadata`, `store`, `service_tier`). Everything else (messages, tools, tool_choice, sampling params,
 * response_format, seed, max tokens…) is part of the key, so a different request never shares an answer.
 */
const NOT_ANSWER_FIELDS = new Set(['stream', 'stream_options', 'user', 'metadata', 'store', 'service_tier', 'prompt_cache_key', 'safety_identifier'])

/**
 * Canonical JSON: object keys sorted, so `{a,b}` and `{b,a}` hash alike. Same text as a recursive
 * JSON.stringify with sorted keys, built with an explicit stack: a client chooses the nesting.
 */
export function canonicalJson(v: unknown): string {
  let out = ''
  // Each entry is either a value still to write or a literal piece of punctuation.
  const stack: Array<{ lit: string } | { val: unknown }> = [{ val: v }]
  while (stack.length) {
    const item = stack.pop()!
    if ('lit' in item) { out += item.lit; continue }
    const x = item.val
    if (x === null || typeof x !== 'object') { out += JSON.stringify(x) ?? 'null'; continue }
    const pieces: Array<{ lit: string } | { val: unknown }> = []
    if (Array.isArray(x)) {
      pieces.push({ lit: '[' })
      for (let i = 0; i < x.length; i++) {
        if (i) pieces.push({ lit: ',' })
        pieces.push({ val: x[i] })
      }
      pieces.push({ lit: ']' })
    } else {
      const o = x as Record<string, unknown>
      const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort()
      pieces.push({ lit: '{' })
      keys.forEach((k, i) => {
        pieces.push({ lit: (i ? ',' : '') + JSON.stringify(k) + ':' })
        pieces.push({ val: o[k] })
      })
      pieces.push({ lit: '}' })
    }
    for (let i = pieces.length - 1; i >= 0; i--) stack.push(pieces[i]!)
  }
  return out
}

/** The body without the fields that do not change the answer, and with `omit` left out too. */
export function answerFields(body: Record<string, unknown>, omit: readonly string[] = []): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(body)) if (!NOT_ANSWER_FIELDS.has(k) && !omit.includes(k)) out[k] = v
  return out
}

/** Exact-cache key: the policy's partition (varyBy values) + the public model + the normalized request. */
export function exactKey(partition: string, model: string, operation: string, body: Record<string, unknown>): string {
  return sha256Hex(canonicalJson({ p: partition, m: model, o: operation, b: answerFields(body, ['model']) }))
}

/** Text of a message's content: a string, or the text parts of an array; null if it holds anything else (images, audio). */
export function contentText(content: unknown): string | null {
  if (typeof content === 'string') return content
  if (content === null || content === undefined) return ''
  if (!Array.isArray(content)) return null
  let s = ''
  for (const part of content) {
    if (!part || typeof part !== 'object') return null
    const p = part as { type?: unknown; text?: unknown }
    if ((p.type === 'text' || p.type === 'input_text') && typeof p.text === 'string') s += (s ? '\n' : '') + p.text
    else return null
  }
  return s
}
