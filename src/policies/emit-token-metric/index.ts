import { addUsage } from '../../core/usage.ts'
import { z } from 'zod'
import type { RequestContext } from '../../core/context.ts'
import type { Outcome, Policy } from '../../core/pipeline.ts'
import { ConfigError } from '../../config/load.ts'
import { celExpression, compileExpr, exprContext, exprString, type Expr } from '../expr.ts'
import type { PolicyDeps, PolicyFactory } from '../types.ts'

/** The metric the policy records into unless `metric` names another. */
export const DEFAULT_METRIC = 'sluice_policy_tokens_total'

/** Dimensions every instance has, filled from the request without CEL (a configured one of the same name overrides it). */
const BUILTIN: ReadonlyArray<[string, (ctx: RequestContext, outcome: Outcome) => string]> = [
  ['consumer', (ctx) => ctx.principal?.consumerId ?? ''],
  ['product', (ctx) => ctx.principal?.productId ?? ''],
  ['model', (ctx) => ctx.model],
  ['backend', (ctx, outcome) => ctx.backendId ?? outcome.servedBy ?? ''],
]

/** Metric names the gateway itself records; a policy may not reuse them. */
const RESERVED_METRICS = new Set([
  'sluice_tokens_total', 'sluice_requests_total', 'sluice_request_duration_seconds', 'sluice_time_to_first_token_seconds',
  'sluice_cache_requests_total', 'sluice_backend_circuit_state', 'sluice_store_failures_total', 'sluice_limit_rejections_total',
  'sluice_metric_series_overflow_total', 'sluice_ledger_dropped_total',
])

/** Beyond the four built-in ones (Azure allows 5 to 10 custom dimensions; every one multiplies the series). */
const MAX_CUSTOM_DIMENSIONS = 10

const dimensionName = z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/, 'a dimension name is a Prometheus label name: letters, digits and _, not starting with a digit')
  .refine((n) => !n.startsWith('__'), 'names starting with __ are reserved')
  .refine((n) => n !== 'type', '"type" is the token type label')

const schema = z.strictObject({
  /** Extra dimensions: label name → CEL expression over the request (contract section 2). */
  dimensions: z.record(dimensionName, celExpression).default({}),
  /** The Prometheus counter to record into; instances sharing a name must share their dimension names. */
  metric: z.string().regex(/^[a-zA-Z_:][a-zA-Z0-9_:]*$/, 'a metric name is letters, digits, _ and :')
    .refine((n) => !RESERVED_METRICS.has(n), 'that name is one of the gateway\'s own metrics')
    .default(DEFAULT_METRIC),
}).superRefine((o, ctx) => {
  const custom = Object.keys(o.dimensions).filter((n) => !BUILTIN.some(([b]) => b === n))
  if (custom.length > MAX_CUSTOM_DIMENSIONS) {
    ctx.addIssue({ code: 'custom', path: ['dimensions'], message: `at most ${MAX_CUSTOM_DIMENSIONS} dimensions beyond consumer, product, model and backend (each one multiplies the series)` })
  }
})
type EmitTokenMetricConfig = z.infer<typeof schema>

type Dimension = (ctx: RequestContext, outcome: Outcome, expr: () => ReturnType<typeof exprContext>) => string

/**
 * `emit-token-metric` (Azure's `llm-emit-token-metric`): once a request's usage is known, adds its prompt,
 * completion and total tokens (and cached and reasoning tokens when the backend reported them) to a
 * counter labelled with the built-in dimensions and the configured ones. Runs only in `complete`, after
 * the response; the counter's series are capped like every metric (`__overflow__` past the cap).
 */
export const emitTokenMetricPolicy: PolicyFactory<EmitTokenMetricConfig> = {
  name: 'emit-token-metric',
  schema,
  create(config: EmitTokenMetricConfig, deps: PolicyDeps): Policy {
    if (!deps.telemetry) throw new Error('emit-token-metric needs the gateway\'s telemetry (PolicyDeps.telemetry)')
    const names: string[] = []
    const dims: Dimension[] = []
    for (const [name, fn] of BUILTIN) {
      const src = config.dimensions[name]
      names.push(name)
      dims.push(src === undefined ? (ctx, outcome) => fn(ctx, outcome) : celDimension(compileExpr(src)))
    }
    for (const [name, src] of Object.entries(config.dimensions)) {
      if (names.includes(name)) continue
      names.push(name)
      dims.push(celDimension(compileExpr(src)))
    }
    let counter
    try {
      counter = deps.telemetry.tokenCounter(config.metric, names)
    } catch (err) {
      throw new ConfigError([{ path: 'emit-token-metric.metric', line: null, message: (err as Error).message }])
    }
    return {
      name: 'emit-token-metric',
      complete(ctx, outcome) {
        const u = addUsage(outcome.usage ?? ctx.usage, outcome.extraUsage ?? null)
        if (!u) return // refused before any backend or policy produced an answer: no tokens to count
        let e: ReturnType<typeof exprContext> | null = null
        const exprCtx = () => (e ??= exprContext(ctx, outcome)) // built once, and only if a CEL dimension needs it
        const values = new Array<string>(dims.length)
        for (let i = 0; i < dims.length; i++) values[i] = dims[i]!(ctx, outcome, exprCtx)
        counter.add(values, {
          prompt: u.promptTokens,
          completion: u.completionTokens,
          total: u.totalTokens || u.promptTokens + u.completionTokens,
          cached: u.cachedTokens,
          reasoning: u.reasoningTokens,
        })
      },
    }
  },
}

function celDimension(expr: Expr): Dimension {
  return (_ctx, _outcome, exprCtx) => exprString(expr, exprCtx())
}
