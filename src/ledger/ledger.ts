import type { Logger } from 'pino'
import type { RequestContext } from '../core/context.ts'
import type { Outcome } from '../core/pipeline.ts'
import type { LedgerConfig } from '../config/schema.ts'
import type { Snapshot } from '../config/snapshot.ts'
import { servedModelOf } from '../upstream/virtual-models.ts'
import { PriceTable } from '../pricing/table.ts'
import type { LedgerStore, MessageRecord, UsageRecord } from '../stores/ledger.ts'
import { noopMetrics, type MetricsSink } from '../telemetry/sink.ts'
import { randomBytes } from 'node:crypto'
import { BatchQueue, type BatchingOptions, type QueueStats } from './queue.ts'
import { messageRecordSize, usageRecordOf, usageRecordSize } from './record.ts'
import type { Journal, JournalKind, JournalPosition, JournalStats } from './journal.ts'

/** What the request path and policies see of the ledger: synchronous hand-overs, never awaited. */
export interface LedgerSink {
  /**
   * One usage record for a finished request (called from the proxy's settle()). `grouped`: the journal's write
   * joins this turn's others, and the caller holds its answer until `journaled()` resolves.
   */
  record(ctx: RequestContext, outcome: Outcome, grouped?: boolean): void
  /** Resolves once the records of `record(…, true)` are in the crash journal (null: nothing to wait for). */
  journaled?(): Promise<void> | null
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
  /** The crash journal records go through before the client sees the answer (null: memory queue only). */
  readonly journal?: Journal | null
}

/** A queued record and where the journal holds it (null: not journaled). */
interface Entry<T> { readonly rec: T; readonly pos: JournalPosition | null }

export interface ReplayStatus {
  /** `none`: nothing to replay; `running`: an earlier life's records are being committed; `done`. */
  readonly state: 'none' | 'running' | 'done' | 'failed'
  readonly records: number
  readonly startedAt: number | null
  readonly finishedAt: number | null
}

/** Batching knobs as the config spells them (absent ones take the queue's defaults). */
export function batchingOf(config: LedgerConfig): Partial<BatchingOptions> {
  if (config.type === 'none') return {}
  return { batchSize: config.batchSize, batchBytes: config.batchBytes, flushInterval: config.flushInterval, maxQueue: config.maxQueue, maxQueueBytes: config.maxQueueBytes }
}

/**
 * The usage ledger of a running gateway: prices each finished request, writes its record to the crash
 * journal (before the client sees the answer: a synchronous append, or one write per turn of the event loop
 * with the answers held until it lands) and queues it for the store; the
 * journal's checkpoint advances as batches commit. Usage records and message logs have separate queues, so
 * bulky message logs can never shed usage records. Every record carries a unique record id: the stores
 * ignore one they already hold, so a replayed or retried batch never duplicates a row.
 */
export class Ledger implements LedgerSink {
  readonly store: LedgerStore
  readonly journal: Journal | null
  private readonly usageQueue: BatchQueue<Entry<UsageRecord>>
  private readonly messageQueue: BatchQueue<Entry<MessageRecord>>
  private readonly tables = new WeakMap<object, PriceTable>()
  private readonly snapshot: () => Snapshot
  private readonly logger: Logger | undefined
  /** Record ids: a random per-process prefix and a counter (unique across processes and restarts, cheap). */
  private readonly idPrefix = randomBytes(9).toString('base64url') + '.'
  private seq = 0
  private replayState: ReplayStatus = { state: 'none', records: 0, startedAt: null, finishedAt: null }
  private replayDone: Promise<void> = Promise.resolve()
  private stopping = false

  constructor(opts: LedgerOptions) {
    this.store = opts.store
    this.snapshot = opts.snapshot
    this.logger = opts.logger
    this.journal = opts.journal ?? null
    const metrics = opts.metrics ?? noopMetrics
    const hooks = (what: string) => ({
      onDrop: (n: number) => metrics.ledgerDropped?.(n),
      onWriteError: (err: unknown, attempt: number) => {
        // Once per outage, not once per retry: the retries themselves are the expected behaviour.
        if (attempt === 1) this.logger?.warn({ err: { message: (err as Error)?.message } }, `ledger: writing ${what} failed; retrying with backoff`)
      },
      onRecover: (attempts: number) => this.logger?.info({ attempts }, `ledger: writing ${what} recovered`),
    })
    const journal = this.journal
    this.usageQueue = new BatchQueue<Entry<UsageRecord>>({
      write: async (b) => { await this.store.append(b.map((e) => e.rec)); journal?.committed('usage', b.map((e) => e.pos)) },
      sizeOf: (e) => usageRecordSize(e.rec),
      ...hooks('usage records'),
    }, opts.batching)
    // Message logs are large: smaller batches by bytes, same bounds.
    this.messageQueue = new BatchQueue<Entry<MessageRecord>>({
      write: async (b) => { await this.store.appendMessages(b.map((e) => e.rec)); journal?.committed('messages', b.map((e) => e.pos)) },
      sizeOf: (e) => messageRecordSize(e.rec),
      ...hooks('message logs'),
    }, opts.batching)
    if (journal?.replayPending) this.replayDone = this.replay(journal)
  }

  record(ctx: RequestContext, outcome: Outcome, grouped = false): void {
    const snap = this.snapshot()
    const deployment = ctx.backendId === null ? null : snap.backends.get(ctx.backendId)?.models?.[servedModelOf(ctx) ?? ctx.model] ?? null
    const rec = usageRecordOf(ctx, outcome, this.pricesFor(snap), deployment) as { -readonly [K in keyof UsageRecord]: UsageRecord[K] }
    rec.recordId = this.nextId()
    this.push('usage', this.usageQueue, rec, usageRecordSize(rec), grouped)
  }

  journaled(): Promise<void> | null {
    return this.journal?.whenWritten() ?? null
  }

  logMessages(record: MessageRecord): void {
    this.push('messages', this.messageQueue, { ...record, recordId: this.nextId() }, messageRecordSize(record))
  }

  /** A record built elsewhere (an MCP tool call: src/mcp/governance.ts): journalled and queued like any other. */
  recordUsage(record: UsageRecord): void {
    const rec = { ...record, recordId: this.nextId() }
    this.push('usage', this.usageQueue, rec, usageRecordSize(rec))
  }

  /** Journal, then queue; a record neither can hold is shed and counted (never blocks, never throws). */
  private push<T>(kind: JournalKind, queue: BatchQueue<Entry<T>>, rec: T, size: number, grouped = false): void {
    if (!queue.hasRoom(size)) { queue.append({ rec, pos: null }); return } // counted as shed by the queue
    let pos: JournalPosition | null = null
    if (this.journal) {
      const at = grouped ? this.journal.appendHeld(kind, rec) : this.journal.append(kind, rec)
      if (at === 'full') { queue.shed(1); return }
      pos = at === 'failed' ? null : at
    }
    queue.append({ rec, pos })
  }

  private nextId(): string {
    return this.idPrefix + (this.seq++).toString(36)
  }

  /** Commits what an earlier life left in the journal, a chunk at a time, alongside new traffic. */
  private async replay(journal: Journal): Promise<void> {
    const startedAt = Date.now()
    this.replayState = { state: 'running', records: 0, startedAt, finishedAt: null }
    let records = 0
    try {
      await journal.replay(async (chunk) => {
        // Wait for the queues to drain first: a backlog larger than the queue bound must not shed anything.
        await Promise.all([this.usageQueue.flush(), this.messageQueue.flush()])
        for (const r of chunk) {
          if (this.stopping) throw new Error('the ledger is closing')
          const ok = r.kind === 'usage'
            ? this.usageQueue.append({ rec: r.value as UsageRecord, pos: r.pos })
            : this.messageQueue.append({ rec: r.value as MessageRecord, pos: r.pos })
          if (!ok) throw new Error('the ledger queue refused a replayed record')
        }
        records += chunk.length
        this.replayState = { ...this.replayState, records }
      })
      await Promise.all([this.usageQueue.flush(), this.messageQueue.flush()])
      const finishedAt = Date.now()
      this.replayState = { state: 'done', records, startedAt, finishedAt }
      this.logger?.info({ records, ms: finishedAt - startedAt, slot: journal.slot }, 'ledger: journal replayed')
    } catch (err) {
      // What was not committed stays in the journal (the checkpoint never passes it): the next start replays it.
      this.replayState = { state: 'failed', records, startedAt, finishedAt: Date.now() }
      if (!this.stopping) this.logger?.error({ err: { message: (err as Error).message } }, 'ledger: journal replay stopped; the rest is replayed at the next start')
    }
  }

  /** Where replay of the journal stands (for `/readyz`). */
  replayStatus(): ReplayStatus {
    return this.replayState
  }

  /** True while records an earlier life left in the journal are still being committed. */
  get replaying(): boolean {
    return this.replayState.state === 'running'
  }

  /**
   * Writes everything queued so far, after the journal's replay (so a report never counts the present
   * without the records replay is still bringing back); false if `timeoutMs` passed first.
   */
  async flush(timeoutMs = Infinity): Promise<boolean> {
    const deadline = Date.now() + timeoutMs
    if (this.replaying) {
      let timer: NodeJS.Timeout | undefined
      const timedOut = Number.isFinite(timeoutMs) ? new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), timeoutMs) }) : new Promise<never>(() => {})
      const r = await Promise.race([this.replayDone, timedOut])
      clearTimeout(timer)
      if (r === 'timeout') return false
    }
    const left = Math.max(0, deadline - Date.now())
    const [a, b] = await Promise.all([this.usageQueue.flush(left), this.messageQueue.flush(left)])
    return a && b
  }

  /**
   * Drains both queues (retrying an unreachable store until `timeoutMs`), then closes the journal and the
   * store. Returns records lost: with a journal, what the store did not take stays there for the next start.
   */
  async close(timeoutMs = 10_000): Promise<number> {
    this.stopping = true
    const [a, b] = await Promise.all([this.usageQueue.close(timeoutMs), this.messageQueue.close(timeoutMs)])
    await this.replayDone
    this.journal?.close()
    const lost = this.journal ? 0 : a + b
    if (a + b > 0) {
      if (this.journal) this.logger?.warn({ usageRecords: a, messageLogs: b, slot: this.journal.slot }, 'ledger: the store stayed unreachable at shutdown; the records stay in the journal and are written at the next start')
      else this.logger?.error({ usageRecords: a, messageLogs: b }, 'ledger: the store stayed unreachable at shutdown; records were lost')
    }
    await this.store.close().catch(() => {})
    return lost
  }

  stats(): { usage: QueueStats; messages: QueueStats; journal: JournalStats | null } {
    return { usage: this.usageQueue.stats(), messages: this.messageQueue.stats(), journal: this.journal?.stats() ?? null }
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
