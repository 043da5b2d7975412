import { Redis } from 'ioredis'
import type { Logger } from 'pino'

export interface RedisConnectionConfig {
  readonly url: string
  /** Milliseconds a command may take before it fails (so a stalled Redis never stalls a request). */
  readonly commandTimeout: number
  /** Longest wait between two reconnection attempts. */
  readonly maxReconnectDelay?: number
  /** Names the client in logs and in `CLIENT LIST`. */
  readonly name?: string
}

/** At most one warning per this interval per client: an outage must not flood the log. */
const WARN_EVERY_MS = 10_000

/**
 * Makes an ioredis client for a gateway store. Built so Redis can never take the gateway down:
 * - it connects lazily in the background (start-up does not fail when Redis is absent);
 * - commands fail fast while disconnected (no offline queue) and time out after `commandTimeout`,
 *   so callers can fall back or refuse at once instead of waiting;
 * - it reconnects forever with a capped backoff, so service comes back by itself when Redis does;
 * - connection errors are logged (rate-limited), never thrown as unhandled `error` events.
 * Call `waitReady` to give the first connection a bounded chance before serving.
 */
export function createRedisClient(config: RedisConnectionConfig, logger: Logger): Redis {
  const maxDelay = config.maxReconnectDelay ?? 2_000
  const client = new Redis(config.url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    commandTimeout: config.commandTimeout,
    connectTimeout: Math.max(1_000, config.commandTimeout * 4),
    maxRetriesPerRequest: 0,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 10), maxDelay),
    connectionName: config.name ?? 'sluice',
  })
  let lastWarn = 0
  client.on('error', (err: Error) => {
    const now = Date.now()
    if (now - lastWarn < WARN_EVERY_MS) return
    lastWarn = now
    logger.warn({ err: { message: err.message, code: (err as { code?: string }).code }, redis: redactUrl(config.url) }, 'redis connection error (retrying in the background)')
  })
  client.on('ready', () => {
    if (lastWarn !== 0) logger.info({ redis: redactUrl(config.url) }, 'redis connection restored')
    lastWarn = 0
  })
  client.connect().catch(() => {}) // failures surface through the 'error' handler and reconnects
  return client
}

/** Resolves true once the client is ready, false after `timeoutMs` (it keeps trying in the background). */
export function waitReady(client: Redis, timeoutMs: number): Promise<boolean> {
  if (client.status === 'ready') return Promise.resolve(true)
  return new Promise((resolve) => {
    const done = (v: boolean) => {
      clearTimeout(timer)
      client.off('ready', onReady)
      resolve(v)
    }
    const onReady = () => done(true)
    const timer = setTimeout(() => done(false), timeoutMs)
    client.on('ready', onReady)
  })
}

/** True when Redis answers a PING within the command timeout. */
export async function pingRedis(client: Redis): Promise<boolean> {
  if (client.status !== 'ready') return false
  try {
    return (await client.ping()) === 'PONG'
  } catch {
    return false
  }
}

/** Closes the client: a polite QUIT when connected, a disconnect otherwise (never hangs on a dead server). */
export async function closeRedis(client: Redis): Promise<void> {
  if (client.status === 'end') return
  if (client.status === 'ready') {
    try {
      await client.quit()
      return
    } catch {
      // fall through to a hard disconnect
    }
  }
  client.disconnect()
}

/** The URL without its password, for logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return 'redis://(unparsable url)'
  }
}
