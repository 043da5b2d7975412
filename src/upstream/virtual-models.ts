import type { ModelConfig } from '../config/schema.ts'
import type { Snapshot } from '../config/snapshot.ts'
import type { RequestContext } from '../core/context.ts'
import { GatewayError, GW_ERR } from '../core/errors.ts'
import type { PriceTable } from '../pricing/table.ts'
import { estimatePromptTokens } from '../tokens/count.ts'

/** What one request needs from a model, derived from its body. */
export interface Requirements {
  readonly promptTokens: number
  /** What it may generate (its cap, or a default). */
  readonly outputTokens: number
  /** Prompt tokens (estimated) plus what it may generate: what the context window must hold. */
  readonly tokens: number
  readonly tools: boolean
  readonly images: boolean
  readonly jsonSchema: boolean
  readonly reasoning: boolean
}

export function requirementsOf(ctx: RequestContext, model: string): Requirements {
  const body = ctx.body
  const tools = Array.isArray(body.tools) && body.tools.length > 0
  const format = body.response_format as { type?: unknown } | undefined
  const text = (body.text as { format?: { type?: unknown } } | undefined)?.format
  const promptTokens = estimatePromptTokens(ctx.operation, body, model)
  const outputTokens = maxOutputOf(body)
  return {
    promptTokens,
    outputTokens,
    tokens: promptTokens + outputTokens,
    tools,
    images: hasImages(body),
    jsonSchema: format?.type === 'json_schema' || text?.type === 'json_schema',
    reasoning: body.reasoning_effort !== undefined || body.thinking !== undefined || body.reasoning !== undefined,
  }
}

/** What the request may generate: its own cap, or a modest default for estimates. */
export function maxOutputOf(body: Record<string, unknown>): number {
  for (const k of ['max_completion_tokens', 'max_tokens', 'max_output_tokens']) {
    const v = body[k]
    if (typeof v === 'number' && Number.isFinite(v) && v > 0) return v
  }
  return 256
}

/** Image parts anywhere in the messages or Responses input (walked without recursion, bounded). */
function hasImages(body: Record<string, unknown>): boolean {
  const stack: unknown[] = [body.messages, body.input]
  let seen = 0
  while (stack.length && seen++ < 50_000) {
    const v = stack.pop()
    if (Array.isArray(v)) {
      for (const x of v) stack.push(x)
    } else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>
      if (o.type === 'image_url' || o.type === 'input_image' || o.type === 'image') return true
      if (Array.isArray(o.content)) stack.push(o.content)
    }
  }
  return false
}

/** Why a candidate cannot take the request, or null when it can. */
export function unmet(candidate: ModelConfig, need: Requirements): string | null {
  const c = candidate.capabilities
  if (!c) return null // declared nothing: assumed to take anything but what it is checked for below
  if (c.contextWindow !== undefined && need.tokens > c.contextWindow) return `more than ${c.contextWindow} tokens`
  if (need.tools && !c.tools) return 'tools'
  if (need.images && !c.images) return 'images'
  if (need.jsonSchema && !c.jsonSchema) return 'JSON schema output'
  if (need.reasoning && !c.reasoning) return 'reasoning'
  return null
}

export interface RouterChoice {
  readonly model: ModelConfig
  readonly reason: string
}

/**
 * A router model's pick: the candidates that can take the request (capabilities), within the caller's
 * `x-sluice-max-cost-usd` if given, then the cheapest by the price table or the fastest by measured
 * answer times (`x-sluice-route` overrides the configured preference for one request).
 */
export function chooseCandidate(
  ctx: RequestContext,
  model: ModelConfig,
  snapshot: Snapshot,
  costOf: (candidate: ModelConfig, need: Requirements) => number | null,
  speedOf: (candidate: ModelConfig) => number | null,
): RouterChoice {
  const router = model.router!
  const header = ctx.info.headers['x-sluice-route']
  const prefer = header === 'cheapest' || header === 'fastest' ? header : router.prefer
  const maxCost = parseMaxCost(ctx.info.headers['x-sluice-max-cost-usd'])
  const reasons: string[] = []
  const able: { m: ModelConfig; cost: number | null; speed: number | null }[] = []
  // Counted once (with the first candidate's tokenizer): tokenizers differ by a few percent at most, far
  // less than the margins context windows are chosen with.
  const need = requirementsOf(ctx, router.candidates[0]!)
  for (const name of router.candidates) {
    const m = snapshot.models.get(name)!
    const why = unmet(m, need)
    if (why !== null) { reasons.push(`${name}: ${why}`); continue }
    const cost = costOf(m, need)
    if (maxCost !== null && (cost === null || cost > maxCost)) { reasons.push(`${name}: over x-sluice-max-cost-usd`); continue }
    able.push({ m, cost, speed: speedOf(m) })
  }
  if (able.length === 0) {
    throw new GatewayError(GW_ERR.INVALID_REQUEST, `No candidate of "${model.name}" can take this request (${reasons.join('; ').slice(0, 400)}).`, { param: 'model' })
  }
  const key = (x: (typeof able)[number]): number => {
    if (prefer === 'cheapest') return x.cost ?? Number.MAX_VALUE // an unpriced candidate only when nothing priced qualifies
    return x.speed ?? -1 // not measured yet: tried, so it gets measured
  }
  let best = able[0]!
  for (const x of able) if (key(x) < key(best)) best = x
  return { model: best.m, reason: prefer }
}

function parseMaxCost(v: string | string[] | undefined): number | null {
  if (typeof v !== 'string' || v.length > 32) return null
  const n = Number(v)
  return Number.isFinite(n) && n >= 0 ? n : null
}

/** Expected USD for a request at a model's price (input and possible output), null when unpriced. */
export function expectedCost(prices: PriceTable, names: readonly (string | undefined)[], need: Requirements): number | null {
  const price = prices.priceOf(...names)
  if (price === null) return null
  return (need.promptTokens * price.input + need.outputTokens * price.output) / 1e6
}

/**
 * A split's side for this caller: a stable hash of the consumer (or, without one, the client address)
 * and the model name picks a point in [0, 100), so each consumer stays on its side across requests,
 * processes and restarts.
 */
export function splitChoice(ctx: RequestContext, model: ModelConfig, snapshot: Snapshot): ModelConfig {
  const who = ctx.principal?.consumerId ?? ctx.info.ip
  const point = (fnv1a(`${model.name}\0${who}`) / 0x1_0000_0000) * 100
  let acc = 0
  for (const side of model.split!) {
    acc += side.percent
    if (point < acc) return snapshot.models.get(side.model)!
  }
  return snapshot.models.get(model.split![model.split!.length - 1]!.model)!
}

/** 32-bit FNV-1a: stable across processes and versions, and far cheaper than a cryptographic digest here. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** The slot where the router notes which model served a virtual model's request (ledger, metrics). */
export const SERVED_MODEL_SLOT = Symbol('sluice.upstream.servedModel')

export function servedModelOf(ctx: RequestContext): string | null {
  return (ctx.slots.get(SERVED_MODEL_SLOT) as string | undefined) ?? null
}
