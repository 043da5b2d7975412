import type { Operation } from '../core/context.ts'
import { usageFromOpenAI, type Usage } from '../core/usage.ts'

/**
 * Follows a stream for accounting: remembers the usage the backend reported and the text it generated,
 * so usage can be counted with the tokenizer when the backend reports none (or the stream was cut).
 */
export class StreamAccounting {
  usage: Usage | null = null
  private readonly parts: string[] = []
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
    const choices = json.choices
    if (!Array.isArray(choices) || choices.length === 0) return false
    let content = false
    for (const c of choices) {
      if (!c || typeof c !== 'object') continue
      const choice = c as Record<string, unknown>
      const delta = choice.delta as Record<string, unknown> | undefined
      const piece = delta ? delta.content ?? delta.refusal : choice.text
      if (typeof piece === 'string' && piece !== '') content = this.text(piece) || content
      else if (delta && Array.isArray(delta.tool_calls)) {
        this.parts.push(JSON.stringify(delta.tool_calls))
        content = true
      }
    }
    return content
  }

  get generatedText(): string {
    return this.parts.join('')
  }

  private text(piece: string): boolean {
    this.parts.push(piece)
    this.sawContent = true
    return true
  }
}

/** The extra usage-only chunk a backend sends when `stream_options.include_usage` is on. */
export function isUsageOnlyChunk(json: Record<string, unknown>): boolean {
  return json.usage !== undefined && json.usage !== null && Array.isArray(json.choices) && json.choices.length === 0
}
