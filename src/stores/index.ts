import pino, { type Logger } from 'pino'
import type { StoreConfig } from '../config/schema.ts'
import { noopMetrics, type MetricsSink } from '../telemetry/sink.ts'
import { FallbackCounterStore } from './fallback-counter.ts'
import { MemoryCounterStore } from './memory/counter.ts'
import type { Stores } from './types.ts'
import { MemoryBreakerStore } from './memory/breaker.ts'
import { MemoryInflightStore } from './inflight.ts'

/** How long start-up waits for a first Redis connection before serving anyway (per `store.onFailure`). */
const REDIS_STARTUP_WAIT_MS = 2_000

export async function createStores(config: StoreConfig, opts: { logger?: Logger; metrics?: MetricsSink } = {}): Promise<Stores> {
  if (config.type === 'memory') {
    return { type: 'memory', breakers: new MemoryBreakerStore(), counters: new MemoryCounterStore(), inflight: new MemoryInflightStore(), redis: null, ping: async () => true, close: async () => {} }
  }
  if (config.type === 'redis') {
    // ioredis and the Redis adapters load only when Redis is configured.
    const [{ closeRedis, createRedisClient, pingRedis, waitReady }, { RedisCounterStore }, { RedisBreakerStore }, { RedisInflightStore }] = await Promise.all([
      import('./redis/connection.ts'), import('./redis/counter.ts'), import('./redis/breaker.ts'), import('./redis/inflight.ts'),
    ])
    const logger = opts.logger ?? pino({ level: 'silent' })
    const redis = createRedisClient({ url: config.url, commandTimeout: config.commandTimeout, name: 'sluice' }, logger.child({ store: 'redis' }))
    await waitReady(redis, REDIS_STARTUP_WAIT_MS)
    const counters = new FallbackCounterStore(new RedisCounterStore(redis, config.keyPrefix), config.onFailure, logger.child({ store: 'redis' }), opts.metrics ?? noopMetrics)
    return {
      type: 'redis',
      breakers: new RedisBreakerStore(redis, config.keyPrefix),
      counters,
      inflight: new RedisInflightStore(redis, config.keyPrefix),
      redis,
      keyPrefix: config.keyPrefix,
      ping: () => pingRedis(redis),
      close: async () => {
        await counters.close()
        await closeRedis(redis)
      },
    }
  }
  throw new Error(`unknown store type ${(config as { type: string }).type}`)
}
