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

/**
 * A secret that straddles the cut is redacted whole: the text is cut to `maxChars` plus this margin, redacted,
 * then cut to `maxChars`. Longer than any built-in pattern's match, so nothing is half-recognised at the edge.
 */
const CUT_MARGIN = 2048

/**
 * Most characters one record keeps across all its strings: redaction is linear, but a 10 MiB body of many
 * short strings would still hold the event loop for a few hundred milliseconds without a total bound.
 */
export const RECORD_MAX_CHARS = 262_144

interface ScrubState { truncated: boolean; budget: number }

/** Caps then redacts one string: the redactor never sees more than maxChars + CUT_MARGIN characters. */
function scrubText(text: string, redact: Redactor, maxChars: number, state: ScrubState): string {
  const keep = Math.min(maxChars, state.budget)
  state.budget -= Math.min(text.length, keep)
  if (text.length <= keep) return redact(text)
  state.truncated = true
  return keep === 0 ? '' : redact(text.slice(0, keep + CUT_MARGIN)).slice(0, keep)
}

/**
 * Caps then redacts every string in a JSON value (message contents, text parts, tool arguments), walking it
 * with an explicit stack, never recursion: a client chooses the nesting.
 */
function scrub(value: unknown, redact: Redactor, maxChars: number, state: ScrubState): unknown {
  const wrap: { v: unknown } = { v: value }
  const stack: Array<[Record<string, unknown> | unknown[], string | number]> = [[wrap as Record<string, unknown>, 'v']]
  while (stack.length) {
    const [holder, key] = stack.pop()!
    const v = (holder as Record<string | number, unknown>)[key]
    if (typeof v === 'string') {
      (holder as Record<string | number, unknown>)[key] = scrubText(v, redact, maxChars, state)
    } else if (Array.isArray(v)) {
      const copy = v.slice()
      ;(holder as Record<string | number, unknown>)[key] = copy
      for (let i = copy.length - 1; i >= 0; i--) stack.push([copy, i]) // popped in order: the budget goes to the first
    } else if (v && typeof v === 'object') {
      const copy: Record<string, unknown> = { ...(v as Record<string, unknown>) }
      ;(holder as Record<string | number, unknown>)[key] = copy
      const keys = Object.keys(copy)
      for (let i = keys.length - 1; i >= 0; i--) stack.push([copy, keys[i]!])
    }
  }
  return wrap.v
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
      readsCompletionText: config.completions,
      complete(ctx: RequestContext, outcome: Outcome): void {
        if (when && when(exprContext(ctx, outcome)) !== true) return
        if (config.sample < 1 && Math.random() >= config.sample) return
        const state: ScrubState = { truncated: false, budget: RECORD_MAX_CHARS }
        const prompt = config.prompts ? JSON.stringify(scrub(promptOf(ctx), redact, config.maxChars, state)) : null
        const completion = config.completions && outcome.completionText !== null ? scrubText(outcome.completionText, redact, config.maxChars, state) : null
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
