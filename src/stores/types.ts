import type { Redis } from 'ioredis'
import type { BreakerStore } from './breaker.ts'
import type { CounterStore } from './counter.ts'
import type { InflightStore } from './inflight.ts'

/**
 * The stores a gateway process uses. Each has an in-process implementation (the embedded default) and a
 * distributed one on a real engine; both pass one shared contract suite under test/contract/.
 */
export interface Stores {
  readonly type: 'memory' | 'redis'
  /** Circuit-breaker state per backend; process-wide (memory) or shared by all processes (Redis). */
  readonly breakers: BreakerStore
  /** Limit counters (token-limit, rate-limit); for Redis, wrapped with the `store.onFailure` rule. */
  readonly counters: CounterStore
  /** Requests in flight per backend (the least-busy strategy); shared by all processes on Redis. */
  readonly inflight: InflightStore
  /** The shared Redis client when `store.type` is redis (made by stores/redis/connection.ts), else null. */
  readonly redis: Redis | null
  /** The Redis key prefix (`store.keyPrefix`), for adapters that share the client; absent for memory. */
  readonly keyPrefix?: string
  /** True when the backing engine answers (for /readyz). */
  ping(): Promise<boolean>
  close(): Promise<void>
}
