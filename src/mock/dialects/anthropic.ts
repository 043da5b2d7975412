/**
 * The mock's Anthropic Messages dialect: `POST /v1/messages` and `/v1/messages/count_tokens`.
 *
 * - Auth: `x-api-key` (or `Authorization: Bearer`, as recent SDKs send it) must be present (any non-empty key, or exactly MockOptions.anthropicApiKey when set) and
 *   `anthropic-version` must be sent, as the real API demands; errors in Anthropic's envelope.
 * - Fault injection from the shared engine (x-mock-status, x-mock-retry-after, x-mock-error-after-tokens…) in
 *   Anthropic's shapes: 529 `overloaded_error`, 429 `rate_limit_error` with `retry-after`, an in-stream `error` event.
 * - Streams in the exact framing of Anthropic's own fixtures (the SDK's tests/lib/fixtures): message_start,
 *   content_block_start, ping, deltas, content_block_stop, message_delta (cumulative usage), message_stop.
 * - Tool calls by the rule of ../tools.ts (x-mock-tool-call, a prompt marker, tool_choice any/tool); arguments
 *   streamed as many `input_json_delta` pieces.
 * - `thinking: {type: enabled}`: a thinking block first, with a signature the mock can verify: an assistant turn
 *   sent back with a thinking block whose signature does not match its text is refused (400), as Anthropic does.
 * - Prompt caching: with cache_control marks, the tokens up to the last mark are reported as
 *   `cache_creation_input_tokens`, or as `cache_read_input_tokens` with `x-mock-cache-hit: 1`; the rest as input.
 * - `stop_sequences`: the text stops before the first one it contains (`stop_reason: stop_sequence`).
 */
import { after, elapsed, header, hflag, rid, sendJson, type Ctx } from '../engine.ts'
import { countTextTokens, fnv1a, makeCompletion, pieceText, type Completion } from '../text.ts'
import { answerPieces, argumentPieces, callId, planToolCalls, toolCallTokens, toolEchoAnswer, type PlannedCall, type ToolRequest } from '../tools.ts'
import type { MockDialect } from './index.ts'

type Json = Record<string, any>

const ERROR_TYPES: Record<number, [string, string]> = {
  400: ['invalid_request_error', 'Bad request (mock).'],
  401: ['authentication_error', 'invalid x-api-key'],
  403: ['permission_error', 'Your API key does not have permission to use the specified resource. (mock)'],
  404: ['not_found_error', 'The requested resource could not be found. (mock)'],
  413: ['request_too_large', 'Request exceeds the maximum allowed number of bytes. (mock)'],
  429: ['rate_limit_error', 'Number of request tokens has exceeded your per-minute rate limit (mock).'],
  500: ['api_error', 'Internal server error (mock).'],
  529: ['overloaded_error', 'Overloaded'],
}

function errorEnvelope(status: number, message?: string): Json {
  const [type, text] = ERROR_TYPES[status] ?? [status >= 500 ? 'api_error' : 'invalid_request_error', `Mock error ${status}.`]
  return { type: 'error', error: { type, message: message ?? text } }
}

function sendError(ctx: Ctx, status: number, message?: string): void {
  const extra: Record<string, string> = { 'request-id': ctx.requestId }
  if ((status === 429 || status === 529 || status === 503) && ctx.eff.retryAfter !== undefined) extra['retry-after'] = String(Math.ceil(ctx.eff.retryAfter))
  if (status === 529 || status === 500) extra['x-should-retry'] = 'true'
  sendJson(ctx, status, { ...errorEnvelope(status, message), request_id: ctx.requestId }, extra)
}

class Refused extends Error {
  constructor(readonly status: number, message: string) {
    super(message)
  }
}

/** The signature the mock gives a thinking text (and checks when it comes back). */
export function mockSignature(thinking: string): string {
  return Buffer.from(`sluice-mock-signature:${fnv1a(thinking).toString(16)}:${thinking.length}`).toString('base64')
}

function blockText(b: Json): string {
  if (b.type === 'text') return String(b.text ?? '')
  if (b.type === 'tool_use') return String(b.name ?? '') + JSON.stringify(b.input ?? {})
  if (b.type === 'tool_result') return typeof b.content === 'string' ? b.content : Array.isArray(b.content) ? b.content.map(blockText).join('') : ''
  if (b.type === 'thinking') return String(b.thinking ?? '')
  return ''
}

interface PromptCount {
  total: number
  /** Tokens up to and including the last cache_control mark (0 without marks). */
  cached: number
  seed: string
}

/** Input tokens with the mock's tokenizer: texts, 85 per image, tool definitions as JSON; marks split cached/uncached. */
function countPrompt(body: Json): PromptCount {
  let total = 0
  let cached = 0
  let seed = ''
  const add = (n: number, marked: boolean) => {
    total += n
    if (marked) cached = total
  }
  for (const t of Array.isArray(body.tools) ? body.tools : []) add(countTextTokens(JSON.stringify({ ...t, cache_control: undefined })), !!t?.cache_control)
  const system = typeof body.system === 'string' ? [{ type: 'text', text: body.system }] : Array.isArray(body.system) ? body.system : []
  // The seed is the OpenAI dialect's (promptSeedText): the same conversation gets the same words in every dialect.
  if (system.length) seed += 'system\u0000' + system.map((b: Json) => String(b?.text ?? '')).join('') + '\u0001'
  for (const b of system) add(countTextTokens(String(b?.text ?? '')), !!b?.cache_control)
  for (const m of body.messages as Json[]) {
    seed += String(m?.role ?? '') + '\u0000'
    const blocks = typeof m?.content === 'string' ? [{ type: 'text', text: m.content }] : Array.isArray(m?.content) ? m.content : []
    add(3, false)
    for (const b of blocks as Json[]) {
      const text = blockText(b ?? {})
      if (b?.type === 'text') seed += text
      add(b?.type === 'image' ? 85 : countTextTokens(text), !!b?.cache_control)
    }
    seed += '\u0001'
  }
  return { total, cached, seed }
}

/** Refuses an assistant thinking block whose signature is not the one the mock gave its text. */
function checkSignatures(messages: Json[]): void {
  messages.forEach((m, i) => {
    if (m?.role !== 'assistant' || !Array.isArray(m.content)) return
    m.content.forEach((b: Json, j: number) => {
      if (b?.type === 'thinking' && b.signature !== mockSignature(String(b.thinking ?? ''))) {
        throw new Refused(400, `messages.${i}.content.${j}: Invalid \`signature\` in \`thinking\` block`)
      }
    })
  })
}

function toolRequest(body: Json): ToolRequest {
  const tools = (Array.isArray(body.tools) ? body.tools : []).flatMap((t: Json) =>
    t && typeof t.name === 'string' && (t.type === undefined || t.type === 'custom') ? [{ name: t.name, schema: t.input_schema ?? {} }] : [],
  )
  const c = body.tool_choice as Json | undefined
  const choice: ToolRequest['choice'] = c?.type === 'any' ? 'any' : c?.type === 'none' ? 'none' : c?.type === 'tool' && typeof c.name === 'string' ? { name: c.name } : 'auto'
  const last = [...(body.messages as Json[])].reverse().find((m) => m?.role !== 'system')
  let lastUserText: string | null = null
  if (last?.role === 'user') {
    if (typeof last.content === 'string') lastUserText = last.content
    else if (Array.isArray(last.content) && !last.content.some((b: Json) => b?.type === 'tool_result')) lastUserText = last.content.map((b: Json) => (b?.type === 'text' ? String(b.text ?? '') : '')).join('\n')
  }
  return { tools, choice, lastUserText }
}

/** The texts of the tool results the last user turn carries (null when it carries none). */
function toolResults(body: Json): string[] | null {
  const last = [...(body.messages as Json[])].reverse().find((m) => m?.role !== 'system')
  if (last?.role !== 'user' || !Array.isArray(last.content)) return null
  const out = last.content.filter((b: Json) => b?.type === 'tool_result').map((b: Json) =>
    typeof b.content === 'string' ? b.content : Array.isArray(b.content) ? b.content.map((p: Json) => (p?.type === 'text' ? String(p.text ?? '') : '')).join('') : '')
  return out.length ? out : null
}

/** The text answer: `count` pieces, cut before the first stop sequence. */
function planText(c: Completion, count: number, stops: string[]): { pieces: string[]; stop: string | null } {
  const pieces: string[] = []
  let text = ''
  for (let i = 0; i < count; i++) {
    const p = pieceText(c, i)
    const next = text + p
    const hit = stops.find((s) => s !== '' && next.includes(s))
    if (hit !== undefined) {
      const cut = next.slice(0, next.indexOf(hit)).slice(text.length)
      if (cut) pieces.push(cut)
      return { pieces, stop: hit }
    }
    pieces.push(p)
    text = next
  }
  return { pieces, stop: null }
}

function messages(ctx: Ctx, body: Json): void {
  if (typeof body.model !== 'string' || body.model === '') throw new Refused(400, 'model: Field required')
  if (!Array.isArray(body.messages) || body.messages.length === 0) throw new Refused(400, 'messages: Field required')
  if (typeof body.max_tokens !== 'number' || !Number.isInteger(body.max_tokens) || body.max_tokens < 1) throw new Refused(400, 'max_tokens: Field required')
  checkSignatures(body.messages)
  const prompt = countPrompt(body)
  const hit = hflag(ctx.req, 'x-mock-cache-hit')
  const usageIn = {
    input_tokens: prompt.total - prompt.cached,
    cache_creation_input_tokens: hit ? 0 : prompt.cached,
    cache_read_input_tokens: hit ? prompt.cached : 0,
  }
  ctx.promptTokens = prompt.total
  const seed = fnv1a(prompt.seed)
  const thinkingOn = (body.thinking as Json | undefined)?.type === 'enabled'
  const thinking = thinkingOn ? completionOf(seed + 7, 6) : null
  const calls = planToolCalls(ctx.req, toolRequest(body))
  const max = body.max_tokens as number
  const natural = ctx.eff.completionTokensHeader ?? ctx.eff.completionTokens
  const count = Math.min(natural, max)
  const echo = calls.length ? null : toolEchoAnswer(ctx.req, toolResults(body))
  const text = calls.length ? { pieces: [], stop: null } : echo !== null ? { pieces: answerPieces(echo), stop: null } : planText(makeCompletion(seed, 0, count), count, Array.isArray(body.stop_sequences) ? body.stop_sequences : [])
  const stopReason = calls.length ? 'tool_use' : echo !== null ? 'end_turn' : text.stop !== null ? 'stop_sequence' : count >= max ? 'max_tokens' : 'end_turn'
  const outputTokens = (thinking ? countTextTokens(thinking) : 0) + (calls.length ? toolCallTokens(calls) : text.pieces.reduce((n, p) => n + countTextTokens(p), 0))
  const id = 'msg_mock' + rid(10)
  const ids = calls.map((_, i) => callId('toolu_', seed, i))
  const content: Json[] = []
  if (thinking) content.push({ type: 'thinking', thinking, signature: mockSignature(thinking) })
  if (!calls.length) content.push({ type: 'text', text: text.pieces.join('') })
  calls.forEach((c, i) => content.push({ type: 'tool_use', id: ids[i], name: c.name, input: JSON.parse(c.arguments) }))
  const usage = { ...usageIn, output_tokens: outputTokens, service_tier: 'standard' }

  if (body.stream !== true) {
    after(ctx, Math.max(ctx.eff.latencyMs, ctx.eff.ttftMs) - elapsed(ctx), () => {
      ctx.stats.completionTokensSent += outputTokens
      sendJson(ctx, 200, { id, type: 'message', role: 'assistant', model: body.model, content, stop_reason: stopReason, stop_sequence: text.stop, usage }, { 'request-id': ctx.requestId })
    })
    return
  }
  streamAnswer(ctx, body.model, id, usageIn, thinking, text.pieces, calls, ids, stopReason, text.stop, outputTokens)
}

function completionOf(seed: number, n: number): string {
  const c = makeCompletion(seed, 0, n)
  let s = ''
  for (let i = 0; i < n; i++) s += pieceText(c, i)
  return s
}

const ev = (type: string, payload: Json): string => `event: ${type}\ndata: ${JSON.stringify({ type, ...payload })}\n\n`

function streamAnswer(
  ctx: Ctx, model: string, id: string, usageIn: Json, thinking: string | null, pieces: string[], calls: PlannedCall[], ids: string[],
  stopReason: string, stopSequence: string | null, outputTokens: number,
): void {
  // Every event after message_start, in order; "content" events count toward x-mock-error/reset-after-tokens.
  const events: { data: string; content: boolean }[] = []
  let index = 0
  const push = (data: string, content = false) => events.push({ data, content })
  let pinged = false
  const start = (block: Json) => {
    push(ev('content_block_start', { index, content_block: block }))
    if (!pinged) { push(ev('ping', {})); pinged = true }
  }
  if (thinking) {
    start({ type: 'thinking', thinking: '', signature: '' })
    for (const p of thinking.match(/.{1,12}/gs) ?? []) push(ev('content_block_delta', { index, delta: { type: 'thinking_delta', thinking: p } }), true)
    push(ev('content_block_delta', { index, delta: { type: 'signature_delta', signature: mockSignature(thinking) } }))
    push(ev('content_block_stop', { index }))
    index++
  }
  if (!calls.length) {
    start({ type: 'text', text: '' })
    for (const p of pieces) push(ev('content_block_delta', { index, delta: { type: 'text_delta', text: p } }), true)
    push(ev('content_block_stop', { index }))
    index++
  }
  calls.forEach((c, i) => {
    start({ type: 'tool_use', id: ids[i], name: c.name, input: {} })
    // Like the real API: an empty first piece, then the JSON in small pieces.
    push(ev('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: '' } }))
    for (const p of argumentPieces(c.arguments)) push(ev('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: p } }), true)
    push(ev('content_block_stop', { index }))
    index++
  })
  push(ev('message_delta', { delta: { stop_reason: stopReason, stop_sequence: stopSequence }, usage: { output_tokens: outputTokens } }))
  push(ev('message_stop', {}))

  const { eff, res } = ctx
  after(ctx, eff.latencyMs - elapsed(ctx), () => {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'request-id': ctx.requestId, 'x-request-id': ctx.requestId })
    res.write(ev('message_start', { message: { id, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { ...usageIn, output_tokens: 1, service_tier: 'standard' } } }))
    const firstAt = Math.max(eff.ttftMs, eff.latencyMs)
    const interval = eff.tps > 0 ? 1000 / eff.tps : 0
    let i = 0
    let sent = 0
    const tick = (): void => {
      if (ctx.closed) return
      let buf = ''
      while (i < events.length) {
        const e = events[i]!
        if (e.content) {
          if (interval > 0 && firstAt + sent * interval > elapsed(ctx) + 0.5) break
          if (eff.errorAfter !== undefined && sent >= eff.errorAfter) return void res.end(buf + ev('error', { error: errorEnvelope(529).error }))
          if (eff.resetAfter !== undefined && sent >= eff.resetAfter) {
            if (buf) res.write(buf)
            ctx.selfReset = true
            return void setTimeout(() => res.socket?.destroy(), 10)
          }
          sent++
          ctx.stats.completionTokensSent++
        }
        buf += e.data
        i++
      }
      if (i >= events.length) return void res.end(buf)
      if (buf) res.write(buf)
      after(ctx, firstAt + sent * interval - elapsed(ctx), tick)
    }
    after(ctx, firstAt - elapsed(ctx), tick)
  })
}

function countTokens(ctx: Ctx, body: Json): void {
  if (typeof body.model !== 'string' || !Array.isArray(body.messages)) throw new Refused(400, 'model and messages are required')
  const prompt = countPrompt(body)
  after(ctx, ctx.eff.latencyMs - elapsed(ctx), () => sendJson(ctx, 200, { input_tokens: prompt.total }, { 'request-id': ctx.requestId }))
}

export const anthropicDialect: MockDialect = {
  name: 'anthropic',
  matches: (method, path) => method === 'POST' && (path === '/v1/messages' || path === '/v1/messages/count_tokens'),
  handle(ctx, raw, path) {
    // The API takes its key as x-api-key; recent SDKs send it as a bearer token instead.
    const bearer = header(ctx.req, 'authorization')
    const key = header(ctx.req, 'x-api-key') || (bearer && /^bearer /i.test(bearer) ? bearer.slice(7).trim() : undefined)
    const wanted = ctx.opts?.anthropicApiKey
    if (!key || (wanted !== undefined && key !== wanted)) return sendError(ctx, 401)
    if (!header(ctx.req, 'anthropic-version')) return sendError(ctx, 400, 'anthropic-version: header is required')
    let body: Json
    try {
      body = JSON.parse(raw.toString('utf8'))
    } catch {
      return sendError(ctx, 400, 'There was an issue with your request body: it is not valid JSON.')
    }
    if (!body || typeof body !== 'object' || Array.isArray(body)) return sendError(ctx, 400, 'The request body must be a JSON object.')
    if (ctx.eff.hang) return
    if (ctx.eff.fail !== undefined) {
      const status = ctx.eff.fail
      return after(ctx, ctx.eff.latencyMs - elapsed(ctx), () => sendError(ctx, status))
    }
    try {
      if (path === '/v1/messages/count_tokens') return countTokens(ctx, body)
      return messages(ctx, body)
    } catch (e) {
      if (e instanceof Refused) return sendError(ctx, e.status, e.message)
      throw e
    }
  },
}
