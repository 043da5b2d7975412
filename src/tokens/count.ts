import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import type { Operation } from '../core/context.ts'
import { CompactBpe } from './compact-bpe.ts'

type Counter = (text: string) => number

// Each encoding's tables cost MiB (o200k_base ~4 MiB off the heap in CompactBpe, ~13 MiB of RSS): load one
// only when a request first needs it, so a gateway that never counts tokens (no limits, backends that
// report usage) never pays.
const require = createRequire(import.meta.url)
let o200k: Counter | null = null
let cl100k: Counter | null = null
type SplitRegexes = { O200K_TOKEN_SPLIT_REGEX: RegExp; CL100K_TOKEN_SPLIT_REGEX: RegExp }
// gpt-tokenizer's data (the `.tiktoken` files it ships) and its pre-tokenization regexes, counted by
// CompactBpe: the package's own GptEncoding holds the same vocabulary as 200k strings in Maps (~40 MiB of
// RSS, 15 of them live heap, for o200k_base) where counting needs only the bytes.
const load = (name: 'o200k_base' | 'cl100k_base'): Counter => {
  const regexes = require('gpt-tokenizer/cjs/encodingParams/constants') as SplitRegexes
  const split = name === 'o200k_base' ? regexes.O200K_TOKEN_SPLIT_REGEX : regexes.CL100K_TOKEN_SPLIT_REGEX
  // A copy: CompactBpe moves the regex's lastIndex, and the package's instance is shared.
  const bpe = new CompactBpe(readFileSync(require.resolve(`gpt-tokenizer/data/${name}.tiktoken`)), new RegExp(split))
  const pieces = new PieceCounts(PIECE_CACHE_CHARS)
  caches.set(name, pieces)
  return (text) => pieces.count(text, (t) => bpe.count(t))
}

/**
 * Characters of piece text remembered per encoding (≈ 4 MiB at most as V8 strings), and pieces: even a
 * role name is worth remembering, since the tokenizer's own overhead per call (~8 µs) dwarfs a lookup.
 */
export const PIECE_CACHE_CHARS = 2 * 1024 * 1024
export const PIECE_CACHE_ENTRIES = 50_000

/**
 * Token counts of recently seen pieces, least recently used first out, bounded by their total characters.
 * Clients resend the same prompt prefix every turn (a system prompt, tool definitions, the history so far:
 * a coding agent's 100 KB prompt differs from the last one by its newest messages), and a piece is always cut
 * at the same places within the same text, so each turn only the new pieces reach the tokenizer. BPE of a
 * 1 KB piece is tens of microseconds; finding it here is one hash of its characters.
 */
class PieceCounts {
  private readonly counts = new Map<string, number>()
  private chars = 0
  hits = 0
  misses = 0
  constructor(private readonly maxChars: number) {}

  count(piece: string, encode: (piece: string) => number): number {
    const known = this.counts.get(piece)
    if (known !== undefined) {
      this.hits++
      // Refreshed as the most recently used.
      this.counts.delete(piece)
      this.counts.set(piece, known)
      return known
    }
    this.misses++
    const n = encode(piece)
    this.counts.set(piece, n)
    this.chars += piece.length
    for (const old of this.counts.keys()) {
      if (this.chars <= this.maxChars && this.counts.size <= PIECE_CACHE_ENTRIES) break
      this.counts.delete(old)
      this.chars -= old.length
    }
    return n
  }

  stats(): { entries: number; chars: number; hits: number; misses: number } {
    return { entries: this.counts.size, chars: this.chars, hits: this.hits, misses: this.misses }
  }
}

/** The piece caches of the encodings loaded so far, by encoding name (for tests and diagnostics). */
const caches = new Map<string, PieceCounts>()

/** Hits, misses and size of an encoding's piece cache (null until that encoding is loaded). */
export function pieceCacheStats(encoding: 'o200k_base' | 'cl100k_base'): { entries: number; chars: number; hits: number; misses: number } | null {
  return caches.get(encoding)?.stats() ?? null
}
/** o200k_base token count (gpt-4o, gpt-4.1, gpt-5, o-series). Unbounded: for text the gateway made itself. */
export const countO200k: Counter = (text) => (o200k ??= load('o200k_base'))(text)
const countCl100k: Counter = (text) => (cl100k ??= load('cl100k_base'))(text)

/**
 * Loads now the encodings of the given models (the default one when none is given). Loading blocks for
 * about a hundred milliseconds (o200k_base ~130 ms on an idle 2-core machine, several times that on a
 * loaded one), so a policy that will count every request calls this when it is built (start-up, reload)
 * with the configured models, and no request waits for an encoding (before preloading, a first embeddings
 * request froze the loop for ~0.5 s).
 */
export function preloadTokenizer(models: Iterable<string> = []): void {
  let any = false
  for (const model of models) {
    counterFor(model)('')
    any = true
  }
  if (!any) countO200k('')
}

/**
 * Picks the tokenizer for a model. OpenAI's current models (gpt-4o, gpt-4.1, gpt-5, o-series) use
 * o200k_base; gpt-4, gpt-3.5 and the text-embedding-3/ada models use cl100k_base. Other providers'
 * models (Claude, Llama, Mistral…) have their own vocabularies; o200k_base is used as the documented
 * approximation for them (typically within ±15% on English text).
 */
export function counterFor(model: string): Counter {
  const m = model.toLowerCase()
  if (/^(gpt-4(?!o|\.1|\.5)|gpt-3\.5|text-embedding|text-davinci|davinci|babbage)/.test(m)) return countCl100k
  return countO200k
}

// ---------------------------------------------------------------------------------------------------------
// Bounded counting. BPE is quadratic in the length of one pre-token (60,000 repeated letters took 4 s), and
// a client chooses the text. So text is encoded in pieces of at most PIECE_CHARS, cut where the tokenizer's
// own pre-tokenization would cut anyway (before a space that follows a non-space and precedes a letter: no
// o200k/cl100k pre-token spans such a point), so normal text counts exactly as a whole would; only a run of
// PIECE_CHARS without such a point is cut blindly (its count is then approximate, never quadratic).
// Past a per-call budget of characters the rest is estimated from the ratio measured on what was counted.

/** Longest text handed to the tokenizer at once (measured: ≤ ~2 ms even for random letters). */
export const PIECE_CHARS = 1024
/** Characters counted exactly by the synchronous functions (≤ a few ms whatever the text). */
export const SYNC_EXACT_CHARS = 4096
/** Characters counted exactly by the asynchronous functions, which yield to the event loop between slices. */
export const ASYNC_EXACT_CHARS = 262_144
/** Longest the asynchronous count runs before it yields to other work. */
const SLICE_MS = 2
/** Tokens per character assumed when too little was counted to measure it (English is ~0.25; be generous). */
const DEFAULT_RATIO = 0.3

const isAsciiLetter = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122)
const isSpace = (c: number) => c === 32 || (c >= 9 && c <= 13)
const LETTER = /\p{L}/u

/** Where the piece starting at `from` ends (exclusive): a safe cut point, or a blind one at PIECE_CHARS. */
export function pieceEnd(text: string, from: number): number {
  const limit = from + PIECE_CHARS
  if (limit >= text.length) return text.length
  const floor = from + (PIECE_CHARS >> 2)
  for (let i = limit; i > floor; i--) {
    if (text.charCodeAt(i) !== 32 || isSpace(text.charCodeAt(i - 1))) continue
    const next = text.charCodeAt(i + 1)
    if (isAsciiLetter(next) || (next > 127 && LETTER.test(text[i + 1]!))) return i
  }
  // No safe point: cut blindly, but never between the halves of a surrogate pair.
  const c = text.charCodeAt(limit)
  return c >= 0xdc00 && c <= 0xdfff ? limit - 1 : limit
}

/** Running total of one count: exact tokens for the characters within budget, characters left to estimate. */
class Tally {
  exactTokens = 0
  exactChars = 0
  estimatedChars = 0
  constructor(readonly count: Counter, private budget: number) {}

  /** Characters of this text still to count exactly; the rest is set aside for the estimate. */
  take(text: string): number {
    const n = Math.min(text.length, this.budget)
    this.budget -= n
    this.estimatedChars += text.length - n
    return n
  }

  piece(text: string, from: number, to: number): void {
    this.exactTokens += this.count(from === 0 && to === text.length ? text : text.slice(from, to))
    this.exactChars += to - from
  }

  total(): number {
    if (this.estimatedChars === 0) return this.exactTokens
    const ratio = this.exactChars >= PIECE_CHARS ? this.exactTokens / this.exactChars : DEFAULT_RATIO
    return this.exactTokens + Math.ceil(this.estimatedChars * ratio)
  }
}

function tallySync(texts: readonly string[], count: Counter, budget: number): number {
  const t = new Tally(count, budget)
  for (const text of texts) {
    const n = t.take(text)
    for (let pos = 0; pos < n;) {
      const end = Math.min(n, pieceEnd(text, pos))
      t.piece(text, pos, end)
      pos = end
    }
  }
  return t.total()
}

const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve))

async function tallyAsync(texts: readonly string[], count: Counter, budget: number): Promise<number> {
  const t = new Tally(count, budget)
  let sliceStart = performance.now()
  for (const text of texts) {
    const n = t.take(text)
    for (let pos = 0; pos < n;) {
      const end = Math.min(n, pieceEnd(text, pos))
      t.piece(text, pos, end)
      pos = end
      if (performance.now() - sliceStart > SLICE_MS) {
        await yieldToLoop()
        sliceStart = performance.now()
      }
    }
  }
  return t.total()
}

/** Tokens of a text, exact within SYNC_EXACT_CHARS and estimated beyond; never blocks for more than a few ms. */
export function countTextTokens(text: string, model: string): number {
  return text ? tallySync([text], counterFor(model), SYNC_EXACT_CHARS) : 0
}

/** Tokens of a text, exact within ASYNC_EXACT_CHARS (yielding between slices), estimated beyond. */
export function countTextTokensAsync(text: string, model: string): Promise<number> | number {
  if (text.length <= SYNC_EXACT_CHARS) return countTextTokens(text, model)
  return tallyAsync([text], counterFor(model), ASYNC_EXACT_CHARS)
}

/** Per OpenAI's chat formatting: 3 tokens of framing per message, +1 for a name, +3 priming the reply. */
const PER_MESSAGE = 3
const PER_NAME = 1
const REPLY_PRIMING = 3
/** Fixed estimate for an image part (the low-detail price); high-detail images cost more. */
const IMAGE_TOKENS = 85

/** What a prompt is made of for counting: tokens known without the tokenizer, and the texts to tokenize. */
interface PromptParts { fixed: number; readonly texts: string[] }

function promptParts(operation: Operation, body: Record<string, unknown>): PromptParts {
  const p: PromptParts = { fixed: 0, texts: [] }
  switch (operation) {
    case 'chat.completions': {
      const messages = Array.isArray(body.messages) ? body.messages : []
      p.fixed += REPLY_PRIMING
      for (const msg of messages) {
        if (!msg || typeof msg !== 'object') continue
        const m = msg as Record<string, unknown>
        p.fixed += PER_MESSAGE
        if (typeof m.role === 'string') p.texts.push(m.role)
        if (typeof m.name === 'string') { p.fixed += PER_NAME; p.texts.push(m.name) }
        contentParts(m.content, p)
        // The body passed the depth bound at the door, so stringify cannot recurse deeply.
        if (Array.isArray(m.tool_calls)) p.texts.push(JSON.stringify(m.tool_calls))
      }
      if (Array.isArray(body.tools)) p.texts.push(JSON.stringify(body.tools))
      break
    }
    case 'completions':
      textInputParts(body.prompt, p)
      break
    case 'embeddings':
      textInputParts(body.input, p)
      break
    case 'responses': {
      if (typeof body.instructions === 'string') p.texts.push(body.instructions)
      if (typeof body.input === 'string') p.texts.push(body.input)
      else if (Array.isArray(body.input)) {
        for (const item of body.input) {
          if (!item || typeof item !== 'object') continue
          p.fixed += PER_MESSAGE
          contentParts((item as Record<string, unknown>).content, p)
        }
      }
      break
    }
  }
  return p
}

function contentParts(content: unknown, p: PromptParts): void {
  if (typeof content === 'string') { p.texts.push(content); return }
  if (!Array.isArray(content)) return
  for (const part of content) {
    if (!part || typeof part !== 'object') continue
    const x = part as Record<string, unknown>
    if (typeof x.text === 'string') p.texts.push(x.text)
    else if (x.type === 'image_url' || x.type === 'input_image') p.fixed += IMAGE_TOKENS
  }
}

function textInputParts(input: unknown, p: PromptParts): void {
  if (typeof input === 'string') { p.texts.push(input); return }
  if (!Array.isArray(input)) return
  for (const item of input) {
    if (typeof item === 'string') p.texts.push(item)
    else if (typeof item === 'number') p.fixed += 1
    else if (Array.isArray(item)) p.fixed += item.length // already tokens
  }
}

/**
 * Estimated prompt tokens of a request body, synchronously: exact within SYNC_EXACT_CHARS of text,
 * estimated beyond. For after-the-fact charges (a cancelled hedge); limits use `countPromptTokens`.
 */
export function estimatePromptTokens(operation: Operation, body: Record<string, unknown>, model: string): number {
  const p = promptParts(operation, body)
  return p.fixed + tallySync(p.texts, counterFor(model), SYNC_EXACT_CHARS)
}

/**
 * Prompt tokens of a request body before the call: exact within ASYNC_EXACT_CHARS of text (about 64k
 * tokens of prose), estimated beyond. A small prompt is counted synchronously (a number, no promise);
 * a large one yields to the event loop every couple of milliseconds, so no body stalls other requests.
 */
export function countPromptTokens(operation: Operation, body: Record<string, unknown>, model: string): number | Promise<number> {
  const p = promptParts(operation, body)
  let chars = 0
  for (const t of p.texts) chars += t.length
  const count = counterFor(model)
  if (chars <= SYNC_EXACT_CHARS) return p.fixed + tallySync(p.texts, count, SYNC_EXACT_CHARS)
  return tallyAsync(p.texts, count, ASYNC_EXACT_CHARS).then((n) => p.fixed + n)
}

/**
 * A counter whose exact budget is shared by every text it is given (one request's parts, counted one by
 * one): each call answers that text's tokens, exact while the budget lasts, estimated after.
 */
export function budgetedCounter(model: string, exactChars: number): (text: string) => number {
  const t = new Tally(counterFor(model), exactChars)
  return (text) => {
    if (!text) return 0
    const before = t.total()
    const n = t.take(text)
    for (let pos = 0; pos < n;) {
      const end = Math.min(n, pieceEnd(text, pos))
      t.piece(text, pos, end)
      pos = end
    }
    return t.total() - before
  }
}
