import { randomBytes } from 'node:crypto'
import type { RequestContext } from '../core/context.ts'
import type { JsonResult, Outcome, StreamChunk, StreamResult } from '../core/pipeline.ts'
import { encodeSse, SSE_DONE, type SseFrame } from '../core/sse.ts'
import type { Usage } from '../core/usage.ts'

/** A cached chat completion, as stored (JSON) by both cache policies; one choice only (n > 1 is never cached). */
export interface CachedAnswer {
  readonly v: 1
  readonly model: string
  readonly content: string | null
  readonly refusal: string | null
  readonly toolCalls: ReadonlyArray<{ id: string; type: string; function: { name: string; arguments: string } }> | null
  readonly finishReason: string
  readonly usage: Usage | null
  readonly systemFingerprint: string | null
  readonly storedAt: number
}

export interface CaptureRules {
  /** Cache answers that call tools (off by default: a tool call is an action, not a reusable answer). */
  readonly cacheToolCalls: boolean
}

/**
 * Collects a backend's answer on the miss path — a JSON body, or stream chunks as they pass (never holding
 * them back) — and turns it into a CachedAnswer once the response is known to be complete and cacheable.
 */
export class AnswerCapture {
  private json: Record<string, unknown> | null = null
  private content = ''
  private refusal = ''
  private readonly tools = new Map<number, { id: string; type: string; name: string; args: string }>()
  private finish: string | null = null
  private model: string | null = null
  private fingerprint: string | null = null
  private uncacheable = false

  onResponse(res: JsonResult): void {
    if (res.status === 200) this.json = res.body
  }

  onChunk(chunk: StreamChunk): void {
    const j = chunk.json
    if (j === null || this.uncacheable) return
    const choices = j.choices
    if (!Array.isArray(choices)) return
    if (typeof j.model === 'string') this.model = j.model
    if (typeof j.system_fingerprint === 'string') this.fingerprint = j.system_fingerprint
    for (const c of choices as Array<Record<string, unknown>>) {
      if (c.index !== 0 && c.index !== undefined) { this.uncacheable = true; return }
      const d = (c.delta ?? {}) as Record<string, unknown>
      if (typeof d.content === 'string') this.content += d.content
      if (typeof d.refusal === 'string') this.refusal += d.refusal
      if (Array.isArray(d.tool_calls)) {
        for (const tc of d.tool_calls as Array<Record<string, any>>) {
          const i = typeof tc.index === 'number' ? tc.index : 0
          const cur = this.tools.get(i) ?? { id: '', type: 'function', name: '', args: '' }
          if (typeof tc.id === 'string') cur.id = tc.id
          if (typeof tc.type === 'string') cur.type = tc.type
          if (typeof tc.function?.name === 'string') cur.name += tc.function.name
          if (typeof tc.function?.arguments === 'string') cur.args += tc.function.arguments
          this.tools.set(i, cur)
        }
      }
      if (typeof c.finish_reason === 'string') this.finish = c.finish_reason
    }
  }

  /** The answer to store, or null when it must not be cached (incomplete, several choices, tool calls…). */
  result(rules: CaptureRules, usage: Usage | null, now: number, fallbackModel: string): CachedAnswer | null {
    if (this.json) return fromBody(this.json, rules, usage, now, fallbackModel)
    if (this.uncacheable || this.finish === null) return null
    if (this.tools.size && !rules.cacheToolCalls) return null
    const toolCalls = this.tools.size ? [...this.tools.entries()].sort((a, b) => a[0] - b[0]).map(([, t]) => ({ id: t.id, type: t.type, function: { name: t.name, arguments: t.args } })) : null
    return { v: 1, model: this.model ?? fallbackModel, content: this.content || (toolCalls ? null : ''), refusal: this.refusal || null, toolCalls, finishReason: this.finish, usage, systemFingerprint: this.fingerprint, storedAt: now }
  }
}

function fromBody(body: Record<string, unknown>, rules: CaptureRules, usage: Usage | null, now: number, fallbackModel: string): CachedAnswer | null {
  const choices = body.choices
  if (body.object !== 'chat.completion' || !Array.isArray(choices) || choices.length !== 1) return null
  const c = choices[0] as { message?: Record<string, unknown>; finish_reason?: unknown }
  const msg = c.message
  if (!msg || typeof c.finish_reason !== 'string') return null
  const calls = Array.isArray(msg.tool_calls) && msg.tool_calls.length ? (msg.tool_calls as CachedAnswer['toolCalls']) : null
  if (calls && !rules.cacheToolCalls) return null
  return {
    v: 1,
    model: typeof body.model === 'string' ? body.model : fallbackModel,
    content: typeof msg.content === 'string' ? msg.content : null,
    refusal: typeof msg.refusal === 'string' ? msg.refusal : null,
    toolCalls: calls,
    finishReason: c.finish_reason,
    usage,
    systemFingerprint: typeof body.system_fingerprint === 'string' ? body.system_fingerprint : null,
    storedAt: now,
  }
}

export function parseAnswer(text: string): CachedAnswer | null {
  try {
    const a = JSON.parse(text) as CachedAnswer
    return a && a.v === 1 && typeof a.finishReason === 'string' ? a : null
  } catch {
    return null
  }
}

function openAIUsage(u: Usage | null): Record<string, unknown> | null {
  if (!u) return null
  return {
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    total_tokens: u.totalTokens,
    prompt_tokens_details: { cached_tokens: u.cachedTokens },
    completion_tokens_details: { reasoning_tokens: u.reasoningTokens },
  }
}

const completionId = () => 'chatcmpl-cache-' + randomBytes(12).toString('base64url')

/** A cached answer as a complete chat.completion response. */
export function answerAsJson(a: CachedAnswer, now: number, headers: Record<string, string>): JsonResult {
  const message: Record<string, unknown> = { role: 'assistant', content: a.content, refusal: a.refusal }
  if (a.toolCalls) message.tool_calls = a.toolCalls
  const body: Record<string, unknown> = {
    id: completionId(),
    object: 'chat.completion',
    created: Math.floor(now / 1000),
    model: a.model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: a.finishReason }],
    usage: openAIUsage(a.usage),
    system_fingerprint: a.systemFingerprint,
  }
  return { kind: 'json', status: 200, headers, body, text: null }
}

/** Content pieces of roughly this many characters, cut after whitespace: a replay that streams like a model. */
const PIECE_CHARS = 24

function pieces(text: string): string[] {
  const out: string[] = []
  let start = 0
  while (start < text.length) {
    let end = Math.min(text.length, start + PIECE_CHARS)
    if (end < text.length) {
      const space = text.indexOf(' ', end)
      end = space === -1 || space - start > PIECE_CHARS * 4 ? end : space + 1
    }
    out.push(text.slice(start, end))
    start = end
  }
  return out
}

/**
 * A cached answer replayed as a chat.completion.chunk stream: role chunk, content chunks, tool-call chunks,
 * finish chunk, usage chunk (always emitted, like the one the gateway asks backends for: the proxy drops it
 * when the client did not ask for `stream_options.include_usage`, after counting it), then `[DONE]`.
 */
export function answerAsStream(a: CachedAnswer, now: number, headers: Record<string, string>): StreamResult {
  const id = completionId()
  const created = Math.floor(now / 1000)
  const base = (choices: unknown[], extra: Record<string, unknown> = {}) =>
    JSON.stringify({ id, object: 'chat.completion.chunk', created, model: a.model, system_fingerprint: a.systemFingerprint, choices, ...extra })
  const frame = (data: string): SseFrame => ({ event: undefined, data, raw: encodeSse(data) })
  let aborted = false
  async function* frames(): AsyncGenerator<SseFrame> {
    const delta = (d: Record<string, unknown>, finish: string | null = null) => base([{ index: 0, delta: d, logprobs: null, finish_reason: finish }])
    yield frame(delta({ role: 'assistant', content: '', refusal: null }))
    for (const p of pieces(a.content ?? '')) {
      if (aborted) return
      yield frame(delta({ content: p }))
    }
    if (a.refusal) yield frame(delta({ refusal: a.refusal }))
    if (a.toolCalls) {
      for (let i = 0; i < a.toolCalls.length; i++) {
        const t = a.toolCalls[i]!
        yield frame(delta({ tool_calls: [{ index: i, id: t.id, type: t.type, function: { name: t.function.name, arguments: t.function.arguments } }] }))
      }
    }
    yield frame(delta({}, a.finishReason))
    const usage = openAIUsage(a.usage)
    if (usage) yield frame(base([], { usage }))
    yield { event: undefined, data: '[DONE]', raw: SSE_DONE }
  }
  return { kind: 'stream', status: 200, headers, frames: frames(), abort: () => { aborted = true } }
}

/**
 * What both cache policies do after a miss: capture the answer as it passes (never delaying it) in the
 * request's slot, and, once the request is complete and storable, hand the finished answer to `store`.
 */
export function captureOnMiss<P extends { readonly capture: AnswerCapture }>(
  slot: symbol,
  rules: CaptureRules,
  now: () => number,
  storable: (outcome: Outcome) => boolean,
  store: (pending: P, answer: CachedAnswer, now: number, ctx: RequestContext) => Promise<void>,
): {
  outboundResponse(ctx: RequestContext, res: JsonResult): void
  outboundChunk(ctx: RequestContext, chunk: StreamChunk): boolean
  complete(ctx: RequestContext, outcome: Outcome): Promise<void>
} {
  return {
    outboundResponse(ctx, res) {
      ;(ctx.slots.get(slot) as P | undefined)?.capture.onResponse(res)
    },
    outboundChunk(ctx, chunk) {
      ;(ctx.slots.get(slot) as P | undefined)?.capture.onChunk(chunk)
      return true
    },
    async complete(ctx, outcome) {
      const p = ctx.slots.get(slot) as P | undefined
      if (!p || !storable(outcome)) return
      const at = now()
      const answer = p.capture.result(rules, outcome.usage, at, ctx.model)
      if (answer) await store(p, answer, at, ctx)
    },
  }
}
