import type { RequestContext } from '../core/context.ts'
import type { Outcome } from '../core/pipeline.ts'
import { addUsage, type Usage } from '../core/usage.ts'
import { PriceTable } from '../pricing/table.ts'
import { servedModelOf } from '../upstream/virtual-models.ts'
import type { MessageRecord, UsageRecord } from '../stores/ledger.ts'

const ZERO: Usage = { promptTokens: 0, completionTokens: 0, totalTokens: 0, cachedTokens: 0, reasoningTokens: 0 }

/** Whether a policy answered from a cache (`cache:exact`, `semantic-cache`…) rather than a backend. */
export function isCacheHit(outcome: Outcome): boolean {
  return outcome.servedBy !== null && /cache/i.test(outcome.servedBy)
}

/**
 * The ledger record of one finished request. Cost is the price table's arithmetic on the reported usage;
 * a cache hit costs nothing (no backend was called) though its tokens are recorded as served, and what the
 * backend would have charged for them is recorded as saved.
 */
export function usageRecordOf(ctx: RequestContext, outcome: Outcome, prices: PriceTable, deploymentModel: string | null): UsageRecord {
  // Cancelled hedges cost tokens too: the ledger bills everything the request consumed.
  const usage = addUsage(outcome.usage ?? ctx.usage, outcome.extraUsage ?? null) ?? ZERO
  const cacheHit = isCacheHit(outcome)
  // A router, race or split model is priced as the model that served it.
  const price = prices.priceOf(servedModelOf(ctx) ?? ctx.model, deploymentModel)
  const costUsd = price === null ? null : cacheHit ? 0 : PriceTable.cost(price, usage)
  const savedUsd = !cacheHit ? 0 : price === null ? null : PriceTable.cost(price, usage)
  return {
    ts: Math.round(ctx.startedAt),
    requestId: ctx.id,
    consumer: ctx.principal?.consumerId ?? null,
    product: ctx.principal?.productId ?? null,
    model: ctx.model || null,
    backend: ctx.backendId,
    status: outcome.status,
    promptTokens: usage.promptTokens,
    completionTokens: usage.completionTokens,
    cachedTokens: usage.cachedTokens,
    reasoningTokens: usage.reasoningTokens,
    costUsd,
    latencyMs: Math.max(0, Math.round(outcome.endedAt - ctx.startedAt)),
    ttftMs: ctx.firstTokenAt === null ? null : Math.max(0, Math.round(ctx.firstTokenAt - ctx.startedAt)),
    cacheHit,
    savedUsd,
    stream: ctx.stream,
    attempts: ctx.attempts,
    errorCode: outcome.error?.code ?? (outcome.aborted ? 'client_closed_request' : null),
  }
}

const strLen = (s: string | null) => (s === null ? 0 : s.length)

/** Approximate stored size of a usage record (fixed columns plus its strings), for the queue's byte bounds. */
export function usageRecordSize(r: UsageRecord): number {
  return 160 + r.requestId.length + strLen(r.consumer) + strLen(r.product) + strLen(r.model) + strLen(r.backend) + strLen(r.errorCode)
}

export function messageRecordSize(m: MessageRecord): number {
  // UTF-16 length understates multi-byte text; x2 keeps the bound honest without encoding the text.
  return 120 + m.requestId.length + strLen(m.consumer) + strLen(m.product) + strLen(m.model) + 2 * (strLen(m.prompt) + strLen(m.completion))
}
