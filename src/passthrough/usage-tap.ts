import type { Usage } from '../core/usage.ts'
import { SseParser } from '../core/sse.ts'
import { EventStreamParser } from '../translate/helpers/aws-eventstream.ts'

type Json = Record<string, unknown>

/** Largest JSON answer kept (as a copy, beside the relay) to read its usage; past it the usage is unknown. */
const MAX_JSON_COPY = 4 * 1024 * 1024
/** Largest single stream event parsed for usage. */
const MAX_EVENT_CHARS = 1024 * 1024

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0)

/** Token counts seen so far: every report is cumulative (or partial), so the largest of each wins. */
class Counts {
  prompt = 0
  completion = 0
  cached = 0
  reasoning = 0
  cacheWrite = 0
  seen = false

  take(prompt: number, completion: number, cached = 0, reasoning = 0, cacheWrite = 0): void {
    this.seen = true
    this.prompt = Math.max(this.prompt, prompt)
    this.completion = Math.max(this.completion, completion)
    this.cached = Math.max(this.cached, cached)
    this.reasoning = Math.max(this.reasoning, reasoning)
    this.cacheWrite = Math.max(this.cacheWrite, cacheWrite)
  }

  usage(): Usage | null {
    if (!this.seen) return null
    return { promptTokens: this.prompt, completionTokens: this.completion, totalTokens: this.prompt + this.completion, cachedTokens: Math.min(this.cached, this.prompt), reasoningTokens: this.reasoning, cacheWriteTokens: this.cacheWrite }
  }
}

/**
 * Reads token usage out of one provider object, whichever native API it is:
 * OpenAI chat/completions/embeddings `usage` { prompt_tokens, completion_tokens } and Responses `usage`
 * { input_tokens, output_tokens } (also inside `response` of stream events); Anthropic `usage` (also inside
 * `message` of message_start; cache reads and writes are added to the prompt, which Anthropic reports apart);
 * Bedrock Converse `usage` { inputTokens, outputTokens }; Bedrock InvokeModel stream metrics
 * `amazon-bedrock-invocationMetrics` { inputTokenCount, outputTokenCount } and base64 `bytes` chunks; Gemini
 * and Vertex `usageMetadata` { promptTokenCount, candidatesTokenCount, thoughtsTokenCount }.
 */
export function readUsage(o: Json, into: Counts, depth = 0): void {
  if (depth > 3) return
  const u = o.usage as Json | undefined
  if (u && typeof u === 'object') {
    if ('prompt_tokens' in u || 'completion_tokens' in u) {
      into.take(num(u.prompt_tokens), num(u.completion_tokens), num((u.prompt_tokens_details as Json | undefined)?.cached_tokens), num((u.completion_tokens_details as Json | undefined)?.reasoning_tokens))
    } else if ('input_tokens' in u || 'output_tokens' in u) {
      const reads = num(u.cache_read_input_tokens)
      const writes = num(u.cache_creation_input_tokens)
      const detailsCached = num((u.input_tokens_details as Json | undefined)?.cached_tokens)
      // Anthropic reports cache reads and writes beside input_tokens; OpenAI's Responses counts them inside.
      into.take(num(u.input_tokens) + reads + writes, num(u.output_tokens), reads || detailsCached, num((u.output_tokens_details as Json | undefined)?.reasoning_tokens), writes)
    } else if ('inputTokens' in u || 'outputTokens' in u) {
      const reads = num(u.cacheReadInputTokens)
      const writes = num(u.cacheWriteInputTokens)
      into.take(num(u.inputTokens) + reads + writes, num(u.outputTokens), reads, 0, writes)
    }
  }
  const g = o.usageMetadata as Json | undefined
  if (g && typeof g === 'object') {
    into.take(num(g.promptTokenCount), num(g.candidatesTokenCount) + num(g.thoughtsTokenCount), num(g.cachedContentTokenCount), num(g.thoughtsTokenCount))
  }
  const m = o['amazon-bedrock-invocationMetrics'] as Json | undefined
  if (m && typeof m === 'object') into.take(num(m.inputTokenCount), num(m.outputTokenCount))
  for (const inner of ['message', 'response'] as const) {
    const v = o[inner]
    if (v && typeof v === 'object' && !Array.isArray(v)) readUsage(v as Json, into, depth + 1)
  }
  // Bedrock InvokeModelWithResponseStream: each `chunk` event's payload is { bytes: base64 of the model's event }.
  if (typeof o.bytes === 'string' && o.bytes.length <= MAX_EVENT_CHARS) {
    const inner = parseObject(Buffer.from(o.bytes, 'base64').toString('utf8'))
    if (inner) readUsage(inner, into, depth + 1)
  }
}

function parseObject(text: string): Json | null {
  if (text.length > MAX_EVENT_CHARS || text.charCodeAt(0) !== 123 /* { */) return null
  try {
    const v: unknown = JSON.parse(text)
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : null
  } catch {
    return null
  }
}

/**
 * Watches a relayed answer go by and reads its token usage, without holding the answer back: SSE and AWS
 * event streams are parsed event by event as the bytes pass (one event at most is held by the parser), a
 * JSON answer is copied aside up to 4 MiB and read at the end. Bedrock's InvokeModel token-count headers are
 * read first. What the tap sees never changes what the client gets.
 */
export class UsageTap {
  private readonly counts = new Counts()
  private readonly sse: SseParser | null = null
  private readonly events: EventStreamParser | null = null
  private json: Buffer[] | null = null
  private jsonBytes = 0

  constructor(contentType: string, headers: Readonly<Record<string, string | string[] | undefined>>) {
    const ct = contentType.toLowerCase()
    if (ct.includes('text/event-stream')) this.sse = new SseParser()
    else if (ct.includes('application/vnd.amazon.eventstream')) this.events = new EventStreamParser()
    else if (ct.includes('json')) this.json = []
    const inTok = headers['x-amzn-bedrock-input-token-count']
    const outTok = headers['x-amzn-bedrock-output-token-count']
    if (typeof inTok === 'string' && typeof outTok === 'string') this.counts.take(Number(inTok) || 0, Number(outTok) || 0)
  }

  push(chunk: Buffer): void {
    if (this.sse) {
      for (const f of this.sse.push(chunk)) this.event(f.data)
    } else if (this.events) {
      for (const e of this.events.push(chunk)) this.event(e.data)
    } else if (this.json) {
      this.jsonBytes += chunk.length
      if (this.jsonBytes > MAX_JSON_COPY) this.json = null
      else this.json.push(chunk)
    }
  }

  /** The usage of the whole answer (null when it carried none). */
  end(): Usage | null {
    if (this.sse) for (const f of this.sse.end()) this.event(f.data)
    if (this.json && this.jsonBytes > 0) {
      const o = parseObject(Buffer.concat(this.json).toString('utf8').trimStart())
      if (o) readUsage(o, this.counts)
      this.json = null
    }
    return this.counts.usage()
  }

  private event(data: string): void {
    const o = parseObject(data)
    if (o) readUsage(o, this.counts)
  }
}

export { Counts as UsageCounts }
