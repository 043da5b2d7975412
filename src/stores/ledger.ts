/**
 * The usage ledger: one append-only record per request, plus opt-in message logs. Written only in batches
 * by the background queue (src/ledger/queue.ts), read by `/admin/usage` and `sluice usage`. The SQLite and
 * PostgreSQL implementations pass one contract suite (test/contract/ledger-store.ts).
 */

/** One request, as it ended. Times are epoch milliseconds. */
export interface UsageRecord {
  readonly ts: number
  readonly requestId: string
  readonly consumer: string | null
  readonly product: string | null
  /** The public model name the client asked for. */
  readonly model: string | null
  /** The backend that answered; null when a policy answered or the request was refused before dispatch. */
  readonly backend: string | null
  readonly status: number
  readonly promptTokens: number
  readonly completionTokens: number
  readonly cachedTokens: number
  readonly reasoningTokens: number
  /** USD; null when the model has no price. */
  readonly costUsd: number | null
  readonly latencyMs: number
  readonly ttftMs: number | null
  /** Answered by a cache policy (no backend call). */
  readonly cacheHit: boolean
  /**
   * USD a cache hit avoided: the price of the usage it served, at the model's price; 0 for a miss, null when a
   * hit's model has no price (stored as 0: nothing known was saved). Optional, so records built before it
   * existed still type-check; they and rows written before the column existed read back as 0.
   */
  readonly savedUsd?: number | null
  /** Bytes of the request and of the answer, for traffic counted in bytes rather than tokens (MCP tool calls); absent otherwise. */
  readonly bytesIn?: number | null
  readonly bytesOut?: number | null
  readonly stream: boolean
  readonly attempts: number
  /** The gateway error code (`rate_limit_exceeded`…), or null on success. */
  readonly errorCode: string | null
  /**
   * The record's idempotency key: a store keeps one row per record id, ignoring a replayed or retried copy.
   * The ledger gives every record its own (a client may reuse an `x-request-id`: that must not hide billable
   * requests); a writer that gives none is keyed by `requestId`. Written, not read back.
   */
  readonly recordId?: string
}

/** Prompt and completion of one request, logged by the `log-messages` policy (already redacted and capped). */
export interface MessageRecord {
  readonly ts: number
  readonly requestId: string
  readonly consumer: string | null
  readonly product: string | null
  readonly model: string | null
  /** JSON text of the request messages (or the prompt/input), null when prompts are not logged. */
  readonly prompt: string | null
  readonly completion: string | null
  /** Whether any message was cut to `maxChars`. */
  readonly truncated: boolean
  /** Idempotency key, as for usage records. */
  readonly recordId?: string
}

export const USAGE_GROUPS = ['consumer', 'model', 'backend', 'day'] as const
export type UsageGroup = (typeof USAGE_GROUPS)[number]

export interface UsageQuery {
  readonly by: UsageGroup
  /** Inclusive lower bound, epoch ms. */
  readonly since?: number | null
  /** Exclusive upper bound, epoch ms. */
  readonly until?: number | null
}

/** One line of the usage report (contract section 4). */
export interface UsageRow {
  /** The group's value; `(none)` where the record has none (e.g. no backend for a refused request). `day` is YYYY-MM-DD in UTC. */
  readonly key: string
  readonly requests: number
  readonly promptTokens: number
  readonly completionTokens: number
  readonly totalTokens: number
  readonly costUsd: number
  readonly cacheHits: number
  /** Requests that ended with status >= 400 (client aborts, 499, included). */
  readonly errors: number
  /** USD the cache hits of the group avoided (the price of what they served). */
  readonly savedUsd: number
}

export interface RecordQuery {
  readonly since?: number | null
  readonly until?: number | null
  readonly requestIds?: readonly string[]
  readonly limit?: number
}

export interface LedgerStore {
  readonly type: 'sqlite' | 'postgres'
  /** Writes a batch in one transaction: all of it or none of it; a record whose id the store holds already is skipped. */
  append(records: readonly UsageRecord[]): Promise<void>
  appendMessages(records: readonly MessageRecord[]): Promise<void>
  /** Aggregates records for the usage report, ordered by key. */
  usage(query: UsageQuery): Promise<UsageRow[]>
  /** Raw records in time order (for tests, exports and audits). */
  records(query?: RecordQuery): Promise<UsageRecord[]>
  messages(query?: RecordQuery): Promise<MessageRecord[]>
  ping(): Promise<boolean>
  close(): Promise<void>
}

/** Label for a group value that is absent. */
export const NO_KEY = '(none)'

/** Rounds summed costs so float noise (0.30000000000000004) does not reach reports. */
export function roundCost(v: number): number {
  return Math.round(v * 1e10) / 1e10
}
