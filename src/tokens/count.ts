import { createRequire } from 'node:module'
import type { Operation } from '../core/context.ts'

type Counter = (text: string) => number

// Each encoding's tables cost tens of MiB (o200k_base ~65, cl100k_base ~40): load one only when a request
// first needs it, so a gateway that never counts tokens (no limits, backends that report usage) never pays.
const require = createRequire(import.meta.url)
let o200k: Counter | null = null
let cl100k: Counter | null = null
type RawCount = (text: string, opts: { disallowedSpecial: Set<string> }) => number
// Text like `<|endoftext|>` in a prompt is counted as plain text, never an error.
const NO_SPECIAL = { disallowedSpecial: new Set<string>() }
const load = (name: string): Counter => {
  const raw = (require(`gpt-tokenizer/cjs/encoding/${name}`) as { countTokens: RawCount }).countTokens
  return (text) => raw(text, NO_SPECIAL)
}
/** o200k_base token count (gpt-4o, gpt-4.1, gpt-5, o-series). */
export const countO200k: Counter = (text) => (o200k ??= load('o200k_base'))(text)
const countCl100k: Counter = (text) => (cl100k ??= load('cl100k_base'))(text)

/**
 * Picks the tokenizer for a model. OpenAI's current models (gpt-4o, gpt-4.1, gpt-5, o-series) use
 * o200k_base; gpt-4, gpt-3.5 and the text-embedding-3/ada models use cl100k_base. Other providers'
 * models (Claude, Llama, Mistral…) have their own vocabularies; o200k_base is used as the documented
 * approximation for them (typically within ±15% on English text).
 */
/**
 * Loads the default encoding now. Loading blocks for a few hundred milliseconds; a policy that will count
 * every request calls this when it is built (start-up, reload) so no request waits for it later.
 */
export function preloadTokenizer(): void {
  countO200k('')
}

export function counterFor(model: string): Counter {
  const m = model.toLowerCase()
  if (/^(gpt-4(?!o|\.1|\.5)|gpt-3\.5|text-embedding|text-davinci|davinci|babbage)/.test(m)) return countCl100k
  return countO200k
}

export function countTextTokens(text: string, model: string): number {
  return text ? counterFor(model)(text) : 0
}

/** Per OpenAI's chat formatting: 3 tokens of framing per message, +1 for a name, +3 priming the reply. */
const PER_MESSAGE = 3
const PER_NAME = 1
const REPLY_PRIMING = 3
/** Fixed estimate for an image part (the low-detail price); high-detail images cost more. */
const IMAGE_TOKENS = 85

/** Estimated prompt tokens of a request body, before the call, for the given operation. */
export function estimatePromptTokens(operation: Operation, body: Record<string, unknown>, model: string): number {
  const count = counterFor(model)
  switch (operation) {
    case 'chat.completions': {
      const messages = Array.isArray(body.messages) ? body.messages : []
      let total = REPLY_PRIMING
      for (const msg of messages) {
        if (!msg || typeof msg !== 'object') continue
        const m = msg as Record<string, unknown>
        total += PER_MESSAGE
        if (typeof m.role === 'string') total += count(m.role)
        if (typeof m.name === 'string') total += PER_NAME + count(m.name)
        total += contentTokens(m.content, count)
        if (Array.isArray(m.tool_calls)) total += count(JSON.stringify(m.tool_calls))
      }
      if (Array.isArray(body.tools)) total += count(JSON.stringify(body.tools))
      return total
    }
    case 'completions':
      return textInputTokens(body.prompt, count)
    case 'embeddings':
      return textInputTokens(body.input, count)
    case 'responses': {
      let total = typeof body.instructions === 'string' ? count(body.instructions) : 0
      if (typeof body.input === 'string') return total + count(body.input)
      if (Array.isArray(body.input)) {
        for (const item of body.input) {
          if (!item || typeof item !== 'object') continue
          const it = item as Record<string, unknown>
          total += PER_MESSAGE + contentTokens(it.content, count)
        }
      }
      return total
    }
  }
}

function contentTokens(content: unknown, count: Counter): number {
  if (typeof content === 'string') return count(content)
  if (!Array.isArray(content)) return 0
  let total = 0
  for (const part of content) {
    if (!part || typeof part !== 'object') continue
    const p = part as Record<string, unknown>
    if (typeof p.text === 'string') total += count(p.text)
    else if (p.type === 'image_url' || p.type === 'input_image') total += IMAGE_TOKENS
  }
  return total
}

function textInputTokens(input: unknown, count: Counter): number {
  if (typeof input === 'string') return count(input)
  if (!Array.isArray(input)) return 0
  let total = 0
  for (const item of input) {
    if (typeof item === 'string') total += count(item)
    else if (typeof item === 'number') total += 1
    else if (Array.isArray(item)) total += item.length // already tokens
  }
  return total
}
