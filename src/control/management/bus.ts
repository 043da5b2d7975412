import type { Redis } from 'ioredis'
import type pg from 'pg'
import type { Logger } from 'pino'

/**
 * Tells the other replicas that the management state changed, so they re-read it at once instead of at the
 * next periodic resync. Messages carry no data (the store is the truth), so a lost one only delays a change
 * until the resync.
 */
export interface ChangeBus {
  publish(): Promise<void>
  subscribe(onChange: () => void): Promise<void>
  close(): Promise<void>
}

/** One process, nobody to tell. */
export class LocalBus implements ChangeBus {
  async publish(): Promise<void> {}
  async subscribe(): Promise<void> {}
  async close(): Promise<void> {}
}

/** Redis pub/sub on the store's connection (publish) and a duplicate of it (subscribe). */
export class RedisBus implements ChangeBus {
  private sub: Redis | null = null
  private readonly channel: string

  constructor(private readonly redis: Redis, prefix: string, private readonly logger: Logger) {
    this.channel = `${prefix}management`
  }

  async publish(): Promise<void> {
    await this.redis.publish(this.channel, String(Date.now())).catch((err: Error) => this.logger.warn({ err: { message: err.message } }, 'management: change notification not sent (replicas catch up at the next resync)'))
  }

  async subscribe(onChange: () => void): Promise<void> {
    const sub = this.redis.duplicate({ enableOfflineQueue: true, lazyConnect: true })
    this.sub = sub
    sub.on('error', () => {}) // the main client logs connection trouble
    sub.on('message', (ch: string) => { if (ch === this.channel) onChange() })
    // A reconnect may have missed messages: re-read once it is back.
    sub.on('ready', () => onChange())
    await sub.connect().catch(() => {})
    await sub.subscribe(this.channel).catch((err: Error) => this.logger.warn({ err: { message: err.message } }, 'management: not subscribed to change notifications yet (relying on resync)'))
  }

  async close(): Promise<void> {
    if (this.sub) this.sub.disconnect()
  }
}

/** PostgreSQL LISTEN/NOTIFY on one dedicated connection, re-established when it drops. */
export class PostgresBus implements ChangeBus {
  private client: pg.Client | null = null
  private closed = false
  private readonly channel: string

  constructor(private readonly pool: pg.Pool, private readonly url: string, prefix: string, private readonly logger: Logger) {
    this.channel = `${prefix}management`.toLowerCase().replace(/[^a-z0-9_]/g, '_')
  }

  async publish(): Promise<void> {
    await this.pool.query('SELECT pg_notify($1, $2)', [this.channel, String(Date.now())]).catch((err: Error) => this.logger.warn({ err: { message: err.message } }, 'management: change notification not sent'))
  }

  async subscribe(onChange: () => void): Promise<void> {
    const connect = async (): Promise<void> => {
      if (this.closed) return
      // pg is imported only by a PostgreSQL deployment (a SQLite one never loads it).
      const { default: pgModule } = await import('pg')
      const client = new pgModule.Client({ connectionString: this.url })
      client.on('error', () => {})
      client.on('notification', (n) => { if (n.channel === this.channel) onChange() })
      client.on('end', () => {
        if (this.closed) return
        setTimeout(() => void connect().then(onChange, () => {}), 1_000).unref()
      })
      try {
        await client.connect()
        await client.query(`LISTEN ${this.channel}`)
        this.client = client
      } catch (err) {
        this.logger.warn({ err: { message: (err as Error).message } }, 'management: LISTEN failed (retrying; relying on resync meanwhile)')
        await client.end().catch(() => {})
      }
    }
    await connect()
  }

  async close(): Promise<void> {
    this.closed = true
    await this.client?.end().catch(() => {})
  }
}
