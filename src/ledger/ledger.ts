import type { Logger } from 'pino'
import type { RequestContext } from '../core/context.ts'
import type { Outcome } from '../core/pipeline.ts'
import type { LedgerConfig } from '../config/schema.ts'
import type { Snapshot } from '../config/snapshot.ts'
import { PriceTable } from '../pricing/table.ts'
import type { LedgerStore, MessageRecord, UsageRecord } from '../stores/ledger.ts'
import { noopMetrics, type MetricsSink } from '../telemetry/sink.ts'
import { BatchQueue, type BatchingOptions, type QueueStats } from './queue.ts'
import { messageRecordSize, usageRecordOf, usageRecordSize } from './record.ts'

/** What the request path and policies see of the ledger: synchronous hand-overs, never awaited. */
export interface LedgerSink {
  /** One usage record for a finished request (called from the proxy's settle()). */
  record(ctx: RequestContext, outcome: Outcome): void
  /** A prompt/completion log (the `log-messages` policy), already redacted and capped. */
  logMessages(record: MessageRecord): void
}

export interface LedgerOptions {
  readonly store: LedgerStore
  /** The live configuration: prices and backend deployment names come from it. */
  readonly snapshot: () => Snapshot
  readonly batching?: Partial<BatchingOptions>
  readonly metrics?: MetricsSink
  readonly logger?: Logger
}

/** Batching knobs as the config spells them (absent ones take the queue's defaults). */
export function batchingOf(config: LedgerConfig): Partial<BatchingOptions> {
  if (config.type === 'none') return {}
  return { batchSize: config.batchSize, batchBytes: config.batchBytes, flushInterval: config.flushInterval, maxQueue: config.maxQueue, maxQueueBytes: config.maxQueueBytes }
}

/**
 * The usage ledger of a running gateway: prices each finished request and queues its record for the store.
 * Usage records and message logs have separate queues, so bulky message logs can never shed usage records.
 */
export class Ledger implements LedgerSink {
  readonly store: LedgerStore
  private readonly usageQueue: BatchQueue<UsageRecord>
  private readonly messageQueue: BatchQueue<MessageRecord>
  private readonly tables = new WeakMap<object, PriceTable>()
  private readonly snapshot: () => Snapshot
  private readonly logger: Logger | undefined

  constructor(opts: LedgerOptions) {
    this.store = opts.store
    this.snapshot = opts.snapshot
    this.logger = opts.logger
    const metrics = opts.metrics ?? noopMetrics
    const hooks = (what: string) => ({
      onDrop: (n: number) => metrics.ledgerDropped?.(n),
      onWriteError: (err: unknown, attempt: number) => {
        // Once per outage, not once per retry: the retries themselves are the expected behaviour.
        if (attempt === 1) this.logger?.warn({ err: { message: (err as Error)?.message } }, `ledger: writing ${what} failed; retrying with backoff`)
      },
      onRecover: (attempts: number) => this.logger?.info({ attempts }, `ledger: writing ${what} recovered`),
    })
    this.usageQueue = new BatchQueue<UsageRecord>({ write: (b) => this.store.append(b), sizeOf: usageRecordSize, ...hooks('usage records') }, opts.batching)
    // Message logs are large: smaller batches by bytes, same bounds.
    this.messageQueue = new BatchQueue<MessageRecord>({ write: (b) => this.store.appendMessages(b), sizeOf: messageRecordSize, ...hooks('message logs') }, opts.batching)
  }

  record(ctx: RequestContext, outcome: Outcome): void {
    const snap = this.snapshot()
    const deployment = ctx.backendId === null ? null : snap.backends.get(ctx.backendId)?.models?.[ctx.model] ?? null
    this.usageQueue.append(usageRecordOf(ctx, outcome, this.pricesFor(snap), deployment))
  }

  logMessages(record: MessageRecord): void {
    this.messageQueue.append(record)
  }

  /** A record built elsewhere (an MCP tool call: src/mcp/governance.ts), queued like any other. */
  recordUsage(record: UsageRecord): void {
    this.usageQueue.append(record)
  }

  /** Writes everything queued so far; false if `timeoutMs` passed first (nothing is lost: writes go on). */
  async flush(timeoutMs = Infinity): Promise<boolean> {
    const [a, b] = await Promise.all([this.usageQueue.flush(timeoutMs), this.messageQueue.flush(timeoutMs)])
    return a && b
  }

  /** Drains both queues (retrying an unreachable store until `timeoutMs`), then closes the store. Returns records lost. */
  async close(timeoutMs = 10_000): Promise<number> {
    const [a, b] = await Promise.all([this.usageQueue.close(timeoutMs), this.messageQueue.close(timeoutMs)])
    if (a + b > 0) this.logger?.error({ usageRecords: a, messageLogs: b }, 'ledger: the store stayed unreachable at shutdown; records were lost')
    await this.store.close().catch(() => {})
    return a + b
  }

  stats(): { usage: QueueStats; messages: QueueStats } {
    return { usage: this.usageQueue.stats(), messages: this.messageQueue.stats() }
  }

  private pricesFor(snap: Snapshot): PriceTable {
    const pricing = snap.config.pricing
    let table = this.tables.get(pricing)
    if (!table) {
      table = new PriceTable(pricing.models)
      this.tables.set(pricing, table)
    }
    return table
  }
}
