import type { Socket } from 'node:net'
import { after, commonHeaders, elapsed, header, rid, sendJson, type Ctx } from '../engine.ts'
import { countTextTokens, fnv1a, makeCompletion, pieceText, type Completion } from '../text.ts'
import { planToolCalls, type ToolRequest } from '../tools.ts'
import { verifyGoogleToken } from './google-identity.ts'
import type { MockDialect } from './index.ts'

/**
 * Gemini's wire protocol, on the Gemini API paths (`/v1beta/models/{m}:generateContent`,
 * `:streamGenerateContent?alt=sse`, key in `x-goog-api-key` or `?key=`) and on Vertex AI's
 * (`/v1/projects/{p}/locations/{r}/publishers/google/models/{m}:…`, a bearer token the mock's
 * google-identity endpoint issued). Streams are framed as Google frames them: `data: {…}\r\n\r\n`, one
 * GenerateContentResponse per event, usageMetadata on each and complete on the last.
 *
 * Function calls by the shared rule in ../tools.ts (x-mock-tool-call / x-mock-tool-calls / x-mock-tool-args,
 * the [[mock-tool:NAME {args}]] marker, and `toolConfig.functionCallingConfig.mode: ANY`, with one allowed
 * name meaning that function). The first call of an answer carries a
 * thoughtSignature; one sent back must be a signature this mock made (or Google's documented skip value).
 * Thoughts: `thinkingConfig.includeThoughts` adds a thought part (THOUGHT_TOKENS tokens, counted in
 * thoughtsTokenCount). Fault injection (x-mock-status…) answers in google.rpc.Status form; a 429 carries
 * its wait as a RetryInfo detail, as Google does, not as a header.
 */

type Json = Record<string, unknown>

const GEMINI_PATH = /^\/(v1|v1beta|v1alpha)\/models\/([^/:]+):(generateContent|streamGenerateContent)$/
const VERTEX_PATH = /^\/(v1|v1beta1)\/projects\/([^/]+)\/locations\/([^/]+)\/publishers\/google\/models\/([^/:]+):(generateContent|streamGenerateContent)$/
export const THOUGHT_TOKENS = 6
/** Gemini counts an image as 258 tokens. */
const IMAGE_TOKENS = 258
const SKIP_SIGNATURE = 'skip_thought_signature_validator'

const RPC_STATUS: Readonly<Record<number, [string, string]>> = {
  400: ['INVALID_ARGUMENT', 'Request contains an invalid argument.'],
  401: ['UNAUTHENTICATED', 'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.'],
  403: ['PERMISSION_DENIED', 'Method doesn\'t allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.'],
  404: ['NOT_FOUND', 'Requested entity was not found.'],
  429: ['RESOURCE_EXHAUSTED', 'You exceeded your current quota, please check your plan and billing details. (mock)'],
  500: ['INTERNAL', 'An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting (mock)'],
  503: ['UNAVAILABLE', 'The model is overloaded. Please try again later. (mock)'],
  504: ['DEADLINE_EXCEEDED', 'Deadline expired before operation could complete. (mock)'],
}

export function rpcError(status: number, message?: string, retryAfterSeconds?: number): Json {
  const [name, text] = RPC_STATUS[status] ?? [status >= 500 ? 'INTERNAL' : 'FAILED_PRECONDITION', `Mock error ${status}.`]
  const error: Json = { code: status, message: message ?? text, status: name }
  if (status === 429 && retryAfterSeconds !== undefined) {
    error.details = [
      { '@type': 'type.googleapis.com/google.rpc.QuotaFailure', violations: [{ quotaMetric: 'generativelanguage.googleapis.com/generate_content_free_tier_requests', quotaId: 'GenerateRequestsPerMinutePerProjectPerModel-FreeTier' }] },
      { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: `${retryAfterSeconds}s` },
    ]
  }
  return { error }
}

function fail(ctx: Ctx, status: number, message?: string): void {
  sendJson(ctx, status, rpcError(status, message, ctx.eff.retryAfter))
}

class Invalid extends Error {}

function isObj(v: unknown): v is Json {
  return !!v && typeof v === 'object' && !Array.isArray(v)
}

export function mockSignature(name: string): string {
  return Buffer.from(`mock-signature:${name}`).toString('base64')
}

/** Prompt tokens by the mock's rule: text tokens of every part, 258 per image or file, the tools' JSON. */
export function geminiPromptTokens(body: Json): number {
  let n = 0
  const partTokens = (p: Json): number => {
    if (typeof p.text === 'string') return countTextTokens(p.text)
    if (p.inlineData || p.fileData) return IMAGE_TOKENS
    if (isObj(p.functionCall)) return countTextTokens(String(p.functionCall.name ?? '')) + countTextTokens(JSON.stringify(p.functionCall.args ?? {}))
    if (isObj(p.functionResponse)) return countTextTokens(String(p.functionResponse.name ?? '')) + countTextTokens(JSON.stringify(p.functionResponse.response ?? {}))
    return 0
  }
  const sys = body.systemInstruction
  if (isObj(sys) && Array.isArray(sys.parts)) for (const p of sys.parts) if (isObj(p)) n += partTokens(p)
  for (const c of body.contents as Json[]) for (const p of (c.parts as unknown[]) ?? []) if (isObj(p)) n += partTokens(p)
  if (Array.isArray(body.tools) && body.tools.length) n += countTextTokens(JSON.stringify(body.tools))
  return n
}

function validate(body: Json): void {
  if (!Array.isArray(body.contents) || body.contents.length === 0) throw new Invalid('* GenerateContentRequest.contents: contents is not specified')
  declarations(body).forEach((d, i) => {
    if (typeof d.name !== 'string' || !d.name) throw new Invalid(`* GenerateContentRequest.tools[0].function_declarations[${i}].name: Name cannot be empty.`)
    if (d.parameters !== undefined && d.parametersJsonSchema !== undefined) throw new Invalid(`* GenerateContentRequest.tools[0].function_declarations[${i}]: parameters and parameters_json_schema are mutually exclusive.`)
  })
  body.contents.forEach((c, i) => {
    if (!isObj(c) || !Array.isArray(c.parts) || c.parts.length === 0) throw new Invalid(`* GenerateContentRequest.contents[${i}].parts: contents.parts must not be empty.`)
    if (c.role !== undefined && c.role !== 'user' && c.role !== 'model') throw new Invalid(`Please use a valid role: user, model.`)
    for (const p of c.parts as unknown[]) {
      if (!isObj(p)) throw new Invalid(`* GenerateContentRequest.contents[${i}].parts: a part must be an object`)
      const sig = p.thoughtSignature
      if (sig !== undefined && sig !== SKIP_SIGNATURE && !(typeof sig === 'string' && Buffer.from(sig, 'base64').toString().startsWith('mock-signature:'))) {
        throw new Invalid(`Thought signature is not valid. (contents[${i}])`)
      }
    }
  })
}

interface Plan {
  text: Completion | null
  textTokens: number
  thoughts: Completion | null
  calls: Json[]
  finish: string
}

function declarations(body: Json): Json[] {
  const out: Json[] = []
  if (Array.isArray(body.tools)) for (const t of body.tools) if (isObj(t) && Array.isArray(t.functionDeclarations)) out.push(...(t.functionDeclarations as Json[]))
  return out
}

/** A Gemini schema (OpenAPI subset, upper-case types) as the JSON Schema the shared tool rule reads. */
function jsonSchemaOf(s: unknown): Record<string, unknown> {
  if (!isObj(s)) return {}
  const out: Json = { ...s }
  if (typeof s.type === 'string') out.type = s.type.toLowerCase()
  if (isObj(s.properties)) out.properties = Object.fromEntries(Object.entries(s.properties).map(([k, v]) => [k, jsonSchemaOf(v)]))
  if (isObj(s.items)) out.items = jsonSchemaOf(s.items)
  return out
}

/** Function calls by the one rule every mock dialect follows (../tools.ts), from Gemini's request terms. */
function planCalls(ctx: Ctx, body: Json): Json[] {
  const decls = declarations(body)
  const fcc = isObj(body.toolConfig) && isObj(body.toolConfig.functionCallingConfig) ? body.toolConfig.functionCallingConfig : {}
  const allowed = Array.isArray(fcc.allowedFunctionNames) ? (fcc.allowedFunctionNames as string[]) : []
  const choice: ToolRequest['choice'] = fcc.mode === 'NONE' ? 'none' : fcc.mode === 'ANY' ? (allowed.length === 1 ? { name: allowed[0]! } : 'any') : 'auto'
  const contents = body.contents as Json[]
  const last = contents[contents.length - 1]!
  const parts = last.parts as Json[]
  const userText = last.role !== 'model' && parts.every((p) => typeof p.text === 'string' || p.inlineData || p.fileData) ? parts.map((p) => (typeof p.text === 'string' ? p.text : '')).join('') : null
  const tools = decls.filter((d) => allowed.length === 0 || allowed.includes(String(d.name))).map((d) => ({ name: String(d.name), schema: isObj(d.parametersJsonSchema) ? d.parametersJsonSchema : { type: 'object', ...jsonSchemaOf(d.parameters) } }))
  return planToolCalls(ctx.req, { tools, choice, lastUserText: userText }).map((c) => ({ name: c.name, args: JSON.parse(c.arguments) as unknown }))
}

function plan(ctx: Ctx, body: Json, seed: number, candidate: number): Plan {
  const gen = isObj(body.generationConfig) ? body.generationConfig : {}
  const tc = isObj(gen.thinkingConfig) ? gen.thinkingConfig : undefined
  const thinking = tc !== undefined && tc.thinkingBudget !== 0
  const budget = typeof tc?.thinkingBudget === 'number' && tc.thinkingBudget > 0 ? tc.thinkingBudget : THOUGHT_TOKENS
  const thoughtCount = thinking ? Math.min(THOUGHT_TOKENS, budget) : 0
  const calls = planCalls(ctx, body)
  const max = typeof gen.maxOutputTokens === 'number' && gen.maxOutputTokens > 0 ? Math.trunc(gen.maxOutputTokens) : undefined
  const natural = ctx.eff.completionTokensHeader ?? max ?? ctx.eff.completionTokens
  const count = calls.length ? 0 : max !== undefined ? Math.min(natural, max) : natural
  return {
    text: count > 0 ? makeCompletion(seed, candidate, count) : null,
    textTokens: count,
    thoughts: thoughtCount > 0 ? makeCompletion(seed + 7, candidate, thoughtCount) : null,
    calls,
    finish: max !== undefined && count >= max && !calls.length ? 'MAX_TOKENS' : 'STOP',
  }
}

function text(c: Completion | null, from: number, to: number): string {
  let s = ''
  if (c) for (let i = from; i < to; i++) s += pieceText(c, i)
  return s
}

function callParts(p: Plan): Json[] {
  return p.calls.map((fc, i) => (i === 0 ? { functionCall: fc, thoughtSignature: mockSignature(String(fc.name)) } : { functionCall: fc }))
}

function usage(prompt: number, plans: Plan[], done: boolean): Json {
  const thoughts = plans.reduce((n, p) => n + (p.thoughts?.count ?? 0), 0)
  const candidates = plans.reduce((n, p) => n + p.textTokens + (p.calls.length ? p.calls.reduce((m, c) => m + countTextTokens(String(c.name)) + countTextTokens(JSON.stringify(c.args)), 0) : 0), 0)
  if (!done) return { promptTokenCount: prompt, totalTokenCount: prompt, promptTokensDetails: [{ modality: 'TEXT', tokenCount: prompt }] }
  const u: Json = { promptTokenCount: prompt, candidatesTokenCount: candidates, totalTokenCount: prompt + candidates + thoughts, promptTokensDetails: [{ modality: 'TEXT', tokenCount: prompt }] }
  if (thoughts) u.thoughtsTokenCount = thoughts
  return u
}

function answer(ctx: Ctx, body: Json, model: string, stream: boolean, sse: boolean): void {
  const prompt = geminiPromptTokens(body)
  ctx.promptTokens = prompt
  const gen = isObj(body.generationConfig) ? body.generationConfig : {}
  const n = typeof gen.candidateCount === 'number' && gen.candidateCount > 1 ? Math.min(8, Math.trunc(gen.candidateCount)) : 1
  const seed = fnv1a(JSON.stringify(body.contents))
  const plans = Array.from({ length: n }, (_, i) => plan(ctx, body, seed, i))
  const responseId = rid(11)
  const envelope = (candidates: Json[], done: boolean) => ({ candidates, usageMetadata: usage(prompt, plans, done), modelVersion: model, responseId })
  const content = (parts: Json[]) => ({ parts, role: 'model' })

  if (!stream) {
    after(ctx, ctx.eff.latencyMs - elapsed(ctx), () => {
      ctx.stats.completionTokensSent += plans.reduce((s, p) => s + p.textTokens, 0)
      const candidates = plans.map((p, index) => {
        const parts: Json[] = []
        if (p.thoughts && isObj(gen.thinkingConfig) && gen.thinkingConfig.includeThoughts === true) parts.push({ text: text(p.thoughts, 0, p.thoughts.count), thought: true })
        if (p.text) parts.push({ text: text(p.text, 0, p.text.count) })
        parts.push(...callParts(p))
        return { content: content(parts), finishReason: p.finish, index }
      })
      sendJson(ctx, 200, envelope(candidates, true))
    })
    return
  }

  const include = isObj(gen.thinkingConfig) && gen.thinkingConfig.includeThoughts === true
  const p = plans[0]!
  const thoughtSteps = include && p.thoughts ? p.thoughts.count : 0
  const steps = thoughtSteps + p.textTokens
  const frame = (v: unknown) => (sse ? `data: ${JSON.stringify(v)}\r\n\r\n` : JSON.stringify(v))
  const frames: string[] = []
  for (let step = 0; step < steps; step++) {
    const part = step < thoughtSteps ? { text: pieceText(p.thoughts!, step), thought: true } : { text: pieceText(p.text!, step - thoughtSteps) }
    frames.push(frame(envelope([{ content: content([part]), index: 0 }], false)))
  }
  const last = frame(envelope([{ content: content(p.calls.length ? callParts(p) : [{ text: '' }]), finishReason: p.finish, index: 0 }], true))
  const errorFrame = frame(rpcError(500, 'An internal error has occurred. (mock stream error)'))
  streamFrames(ctx, frames, last, errorFrame, sse)
}

/** Writes the events at the mock's pace, with the shared stream faults (reset / error after N tokens). */
function streamFrames(ctx: Ctx, frames: string[], last: string, errorFrame: string, sse: boolean): void {
  const { eff, res } = ctx
  const sep = sse ? '' : ','
  after(ctx, eff.latencyMs - elapsed(ctx), () => {
    res.writeHead(200, { ...commonHeaders(ctx), 'content-type': sse ? 'text/event-stream' : 'application/json; charset=UTF-8', 'content-disposition': 'attachment' })
    if (!sse) res.write('[')
    const firstAt = Math.max(eff.ttftMs, eff.latencyMs)
    const interval = eff.tps > 0 ? 1000 / eff.tps : 0
    let i = 0
    const tick = (): void => {
      let buf = ''
      while (i < frames.length) {
        if (interval > 0 && firstAt + i * interval > elapsed(ctx) + 0.5) break
        if (eff.resetAfter !== undefined && i >= eff.resetAfter) return reset(ctx, buf)
        if (eff.errorAfter !== undefined && i >= eff.errorAfter) return void res.end(buf + (i > 0 && !sse ? sep : '') + errorFrame + (sse ? '' : ']'))
        buf += (i > 0 && !sse ? sep : '') + frames[i]
        i++
        ctx.stats.completionTokensSent++
      }
      if (i >= frames.length) {
        if (eff.resetAfter !== undefined && i >= eff.resetAfter && frames.length > 0) return reset(ctx, buf)
        if (eff.errorAfter !== undefined && i >= eff.errorAfter) return void res.end(buf + (i > 0 && !sse ? sep : '') + errorFrame + (sse ? '' : ']'))
        return void res.end(buf + (i > 0 && !sse ? sep : '') + last + (sse ? '' : ']'))
      }
      if (buf) res.write(buf)
      after(ctx, firstAt + i * interval - elapsed(ctx), tick)
    }
    after(ctx, firstAt - elapsed(ctx), tick)
  })
}

function reset(ctx: Ctx, buf: string): void {
  if (buf) ctx.res.write(buf)
  ctx.selfReset = true
  const sock = ctx.res.socket as (Socket & { resetAndDestroy?: () => void }) | null
  setTimeout(() => {
    if (!sock || sock.destroyed) return
    if (typeof sock.resetAndDestroy === 'function') sock.resetAndDestroy()
    else sock.destroy()
  }, 10)
}

function apiKeyOf(ctx: Ctx): string | undefined {
  const h = header(ctx.req, 'x-goog-api-key')
  if (h) return h
  const url = ctx.req.url ?? ''
  const q = url.indexOf('?')
  return q === -1 ? undefined : new URLSearchParams(url.slice(q + 1)).get('key') ?? undefined
}

export const geminiDialect: MockDialect = {
  name: 'gemini',
  matches: (method, path) => method === 'POST' && (GEMINI_PATH.test(path) || VERTEX_PATH.test(path)),
  handle(ctx, raw, path) {
    const g = GEMINI_PATH.exec(path)
    const v = g ? null : VERTEX_PATH.exec(path)
    const model = decodeURIComponent(g ? g[2]! : v![4]!)
    const method = g ? g[3]! : v![5]!
    if (g) {
      const key = apiKeyOf(ctx)
      if (!key) return fail(ctx, 403)
      if (key.startsWith('invalid')) {
        return sendJson(ctx, 400, { error: { code: 400, message: 'API key not valid. Please pass a valid API key.', status: 'INVALID_ARGUMENT', details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID', domain: 'googleapis.com', metadata: { service: 'generativelanguage.googleapis.com' } }] } })
      }
    } else {
      const auth = header(ctx.req, 'authorization') ?? ''
      const token = /^Bearer\s+(.+)$/i.exec(auth)?.[1]
      if (!token || !verifyGoogleToken(token)) return fail(ctx, 401)
    }
    let body: Json
    try {
      const parsed: unknown = JSON.parse(raw.toString('utf8'))
      if (!isObj(parsed)) throw new Error('not an object')
      body = parsed
    } catch {
      return fail(ctx, 400, 'Invalid JSON payload received.')
    }
    if (ctx.eff.hang) return
    if (ctx.eff.fail !== undefined) {
      const status = ctx.eff.fail
      return after(ctx, ctx.eff.latencyMs - elapsed(ctx), () => fail(ctx, status))
    }
    try {
      validate(body)
    } catch (e) {
      if (e instanceof Invalid) return fail(ctx, 400, e.message)
      throw e
    }
    const url = ctx.req.url ?? ''
    const sse = /[?&]alt=sse(&|$)/.test(url)
    answer(ctx, body, model, method === 'streamGenerateContent', sse)
  },
}
