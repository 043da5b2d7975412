import type { Operation } from '../core/context.ts'
import { usageFromOpenAI, type Usage } from '../core/usage.ts'

/**
 * Follows a stream for accounting: remembers the usage the backend reported and the text it generated,
 * so usage can be counted with the tokenizer when the backend reports none (or the stream was cut).
 */
export class StreamAccounting {
  usage: Usage | null = null
  /** Text pieces, and events kept unparsed (`defer`) whose text is taken only if it is asked for. */
  private parts: (string | Deferred)[] = []
  private deferredChars = 0
  sawContent = false

  constructor(private readonly operation: Operation) {}

  /** Reads one parsed event; returns true when it carries content (for time to first token). */
  observe(json: Record<string, unknown>): boolean {
    if (this.operation === 'responses') {
      const type = json.type
      if (type === 'response.output_text.delta' && typeof json.delta === 'string') return this.text(json.delta)
      if ((type === 'response.completed' || type === 'response.incomplete') && json.response && typeof json.response === 'object') {
        this.usage = usageFromOpenAI((json.response as Record<string, unknown>).usage) ?? this.usage
      }
      return false
    }
    if (json.usage) this.usage = usageFromOpenAI(json.usage) ?? this.usage
    let content = false
    for (const piece of chatPieces(json)) content = this.text(piece)
    return content
  }

  /**
   * Keeps an event's data for later instead of parsing it now (a chat delta that carries no usage and no
   * error): the text is only needed when the backend reports no usage, the stream is cut, or a policy logs
   * completions. Past DEFERRED_MAX_CHARS the events kept are read, so a long stream holds its text, not its JSON.
   */
  defer(data: string): void {
    this.parts.push({ data })
    this.deferredChars += data.length
    if (this.deferredChars > DEFERRED_MAX_CHARS) this.resolveDeferred()
  }

  get generatedText(): string {
    if (this.deferredChars !== 0) this.resolveDeferred()
    return this.parts.join('')
  }

  private resolveDeferred(): void {
    // A new list: one event can give several pieces (n > 1 choices), so it cannot be rewritten in place.
    const resolved: string[] = []
    for (const p of this.parts) {
      if (typeof p === 'string') { resolved.push(p); continue }
      let json: unknown
      try { json = JSON.parse(p.data) } catch { continue }
      if (json && typeof json === 'object') for (const piece of chatPieces(json as Record<string, unknown>)) resolved.push(piece)
    }
    this.parts = resolved
    this.deferredChars = 0
  }

  private text(piece: string): boolean {
    this.parts.push(piece)
    this.sawContent = true
    return true
  }
}

interface Deferred {
  readonly data: string
}

/** Most characters of unparsed events kept for their text (see `defer`). */
export const DEFERRED_MAX_CHARS = 256 * 1024

/** The generated text of a chat (or legacy completions) chunk: content, refusal, text, tool calls as JSON. */
function chatPieces(json: Record<string, unknown>): string[] {
  const choices = json.choices
  if (!Array.isArray(choices) || choices.length === 0) return NO_PIECES
  const out: string[] = []
  for (const c of choices) {
    if (!c || typeof c !== 'object') continue
    const choice = c as Record<string, unknown>
    const delta = choice.delta as Record<string, unknown> | undefined
    const piece = delta ? delta.content ?? delta.refusal : choice.text
    if (typeof piece === 'string' && piece !== '') out.push(piece)
    else if (delta && Array.isArray(delta.tool_calls)) out.push(JSON.stringify(delta.tool_calls))
  }
  return out
}
const NO_PIECES: string[] = []

/**
 * Whether a chat chunk's text may carry usage (a `usage` that is not null) or an error: only those need
 * parsing while the stream runs. A false positive (the word in generated text) only costs a parse; a key is
 * never missed, whatever JSON whitespace surrounds it.
 */
export function mayCarryUsageOrError(data: string): boolean {
  // One compiled-regex pass finds neither key in a plain delta (measured ~10× cheaper than two `includes`).
  if (!USAGE_OR_ERROR.test(data)) return false
  if (data.includes('"error"')) return true
  for (let i = data.indexOf('"usage"'); i !== -1; i = data.indexOf('"usage"', i + 7)) {
    let j = skipSpace(data, i + 7)
    if (data.charCodeAt(j) !== 58 /* : */) continue
    j = skipSpace(data, j + 1)
    if (data.charCodeAt(j) !== 110 /* n(ull) */) return true
  }
  return false
}

const USAGE_OR_ERROR = /"(?:error|usage)"/

function skipSpace(s: string, i: number): number {
  for (;;) {
    const c = s.charCodeAt(i)
    if (c !== 32 && c !== 9 && c !== 10 && c !== 13) return i
    i++
  }
}

/** The extra usage-only chunk a backend sends when `stream_options.include_usage` is on. */
export function isUsageOnlyChunk(json: Record<string, unknown>): boolean {
  return json.usage !== undefined && json.usage !== null && Array.isArray(json.choices) && json.choices.length === 0
}
