import { z } from 'zod'
import { lazyPackage } from '../core/lazy-package.ts'
import type { RequestContext } from '../core/context.ts'
import type { Outcome } from '../core/pipeline.ts'

/** The CEL evaluation context of the contract (section 2): consumer, request, and in outbound parts backend, response, usage. */
export interface ExprContext {
  consumer: { id: string; product: string; metadata: Readonly<Record<string, string>> }
  request: { ip: string; method: string; path: string; headers: Readonly<Record<string, unknown>>; model: string; stream: boolean }
  backend?: { id: string }
  response?: { status: number }
  usage?: { promptTokens: number; completionTokens: number }
}

export type Expr = (ctx: ExprContext) => unknown

// The CEL evaluator is loaded by the first expression that is not a plain path (src/core/lazy-package.ts says why).
const cel = lazyPackage<typeof import('@marcbachmann/cel-js')>('@marcbachmann/cel-js')

const SIMPLE_PATH = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/

/**
 * Compiles a CEL expression once (at config load). A plain dotted path such as `consumer.id` skips the
 * CEL evaluator: it is the common case on the hot path. Evaluation errors (a missing header, a missing
 * key) yield null rather than failing the request; integers come back as numbers, not BigInt.
 */
export function compileExpr(source: string): Expr {
  const text = source.trim()
  if (SIMPLE_PATH.test(text)) {
    const parts = text.split('.')
    return (ctx) => {
      let v: unknown = ctx
      for (const p of parts) {
        if (v === null || typeof v !== 'object') return null
        v = (v as Record<string, unknown>)[p]
      }
      return normalise(v)
    }
  }
  const fn = cel().parse(text)
  return (ctx) => {
    try {
      return normalise(fn(ctx as unknown as Record<string, unknown>))
    } catch {
      return null
    }
  }
}

function normalise(v: unknown): unknown {
  if (typeof v === 'bigint') return Number(v)
  return v === undefined ? null : v
}

/** Renders an expression's value as a string key part (null → empty). */
export function exprString(e: Expr, ctx: ExprContext): string {
  const v = e(ctx)
  if (v === null) return ''
  return typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v)
}

/**
 * Direct readers for the paths counter keys use most, with the values `exprString(compileExpr(path),
 * exprContext(ctx))` gives: a request's key is computed without building the expression context (three
 * objects per request, for one field).
 */
const DIRECT_KEYS: Readonly<Record<string, (ctx: RequestContext) => string>> = {
  'consumer.id': (ctx) => ctx.principal?.consumerId ?? '',
  'consumer.product': (ctx) => ctx.principal?.productId ?? '',
  'request.model': (ctx) => ctx.model,
}

/** Compiles an inbound key expression (a counter key) to a string of the request, as `exprString` renders it. */
export function compileRequestKey(source: string): (ctx: RequestContext) => string {
  const direct = DIRECT_KEYS[source.trim()]
  if (direct) return direct
  const expr = compileExpr(source)
  return (ctx) => exprString(expr, exprContext(ctx))
}

/** A zod schema for a CEL expression option: validated (parsed) at config load, so `sluice check` reports syntax errors. */
export const celExpression = z.string().min(1).superRefine((src, ctx) => {
  if (SIMPLE_PATH.test(src.trim())) return
  try {
    cel().parse(src)
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `invalid CEL expression: ${(err as Error).message.split('\n')[0]}` })
  }
})

/** Builds the expression context for a request (and, once known, its outcome). */
export function exprContext(ctx: RequestContext, outcome?: Outcome): ExprContext {
  const e: ExprContext = {
    consumer: {
      id: ctx.principal?.consumerId ?? '',
      product: ctx.principal?.productId ?? '',
      metadata: ctx.principal?.metadata ?? {},
    },
    request: {
      ip: ctx.info.ip,
      method: ctx.info.method,
      path: ctx.info.path,
      headers: ctx.info.headers,
      model: ctx.model,
      stream: ctx.stream,
    },
  }
  if (ctx.backendId !== null) e.backend = { id: ctx.backendId }
  if (outcome) {
    e.response = { status: outcome.status }
    const u = outcome.usage ?? ctx.usage
    e.usage = { promptTokens: u?.promptTokens ?? 0, completionTokens: u?.completionTokens ?? 0 }
  }
  return e
}
