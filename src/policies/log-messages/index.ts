import { z } from 'zod'
import type { RequestContext } from '../../core/context.ts'
import type { Outcome, Policy } from '../../core/pipeline.ts'
import { celExpression, compileExpr, exprContext } from '../expr.ts'
import type { PolicyDeps, PolicyFactory } from '../types.ts'
import { makeRedactor, patternProblem, type Redactor } from './redact.ts'

const pattern = z.string().min(1).superRefine((p, ctx) => {
  const problem = patternProblem(p)
  if (problem) ctx.addIssue({ code: 'custom', message: problem })
})

export const logMessagesSchema = z.strictObject({
  /** Share of matching requests logged, 0..1. */
  sample: z.number().min(0).max(1).default(1),
  /** Longest text kept per message (longer ones are cut and the record marked truncated). */
  maxChars: z.number().int().positive().default(32_768),
  /** Extra regular expressions (JavaScript syntax) whose matches are replaced by `[REDACTED:custom]`. */
  redact: z.array(pattern).default([]),
  /** The built-in rules: API keys, bearer tokens, secrets in `key=value` form, e-mail addresses, card numbers. */
  builtinRedaction: z.boolean().default(true),
  /** CEL condition (contract context, outcome included): log only when it is true, e.g. `consumer.id == "team-a"`. */
  when: celExpression.optional(),
  prompts: z.boolean().default(true),
  completions: z.boolean().default(true),
})
export type LogMessagesConfig = z.infer<typeof logMessagesSchema>

/** Redacts then caps every string in a JSON value (message contents, text parts, tool arguments). */
function scrub(value: unknown, redact: Redactor, maxChars: number, state: { truncated: boolean }): unknown {
  if (typeof value === 'string') {
    const clean = redact(value)
    if (clean.length <= maxChars) return clean
    state.truncated = true
    return clean.slice(0, maxChars)
  }
  if (Array.isArray(value)) return value.map((v) => scrub(v, redact, maxChars, state))
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) out[k] = scrub(v, redact, maxChars, state)
    return out
  }
  return value
}

/** The prompt part of a request body, by operation. */
function promptOf(ctx: RequestContext): unknown {
  const b = ctx.body
  switch (ctx.operation) {
    case 'chat.completions': return b.messages ?? null
    case 'completions': return b.prompt ?? null
    case 'embeddings': return b.input ?? null
    case 'responses': return b.instructions === undefined ? (b.input ?? null) : { instructions: b.instructions, input: b.input ?? null }
  }
}

/**
 * `log-messages`: opt-in logging of prompts and completions into the ledger's message log. Scoped like any
 * policy (a product's list, or global with `when`); sampled; redacted and capped before it is queued, so
 * nothing unredacted ever reaches the store. Runs in `complete`, after the response.
 */
export const logMessages: PolicyFactory<LogMessagesConfig> = {
  name: 'log-messages',
  schema: logMessagesSchema,
  create(config: LogMessagesConfig, deps: PolicyDeps): Policy {
    const ledger = deps.ledger
    if (!ledger) {
      deps.logger.warn('log-messages: no ledger is configured (ledger: { type: none }); nothing will be logged')
      return { name: 'log-messages' }
    }
    const redact = makeRedactor(config.redact, config.builtinRedaction)
    const when = config.when ? compileExpr(config.when) : null
    return {
      name: 'log-messages',
      complete(ctx: RequestContext, outcome: Outcome): void {
        if (when && when(exprContext(ctx, outcome)) !== true) return
        if (config.sample < 1 && Math.random() >= config.sample) return
        const state = { truncated: false }
        const prompt = config.prompts ? JSON.stringify(scrub(promptOf(ctx), redact, config.maxChars, state)) : null
        const completion = config.completions && outcome.completionText !== null ? (scrub(outcome.completionText, redact, config.maxChars, state) as string) : null
        ledger.logMessages({
          ts: Math.round(ctx.startedAt),
          requestId: ctx.id,
          consumer: ctx.principal?.consumerId ?? null,
          product: ctx.principal?.productId ?? null,
          model: ctx.model,
          prompt,
          completion,
          truncated: state.truncated,
        })
      },
    }
  },
}
