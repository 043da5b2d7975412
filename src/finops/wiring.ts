import type { Logger } from 'pino'
import type { Clock } from '../core/clock.ts'
import type { GatewayConfig } from '../config/schema.ts'
import type { PolicyRegistry } from '../policies/types.ts'
import type { Runtime } from '../server/runtime.ts'
import type { KeyStore } from '../stores/keys.ts'
import type { Stores } from '../stores/types.ts'
import { LocalBus, PostgresBus, RedisBus, type ChangeBus } from '../control/management/bus.ts'
import { ManagementDirectory } from '../control/management/directory.ts'
import { mergeManaged } from '../control/management/merge.ts'
import { MemoryManagementStore } from '../control/management/memory.ts'
import { ManagementService } from '../control/management/service.ts'
import type { ManagementStore } from '../control/management/store.ts'
import { AlertSink } from './alerts.ts'
import { MemoryOnceStore, RedisOnceStore } from './once.ts'
import { suspensionCheck } from './suspension-policy.ts'
import { WebhookDispatcher } from './webhooks.ts'

/** The FinOps and management parts of a gateway process, made once and kept across reloads. */
export interface Finops {
  readonly directory: ManagementDirectory
  readonly alerts: AlertSink
  readonly webhooks: WebhookDispatcher
  readonly prelude: ReturnType<typeof suspensionCheck>
  /** The file's configuration with the run-time consumers and products added. */
  effective(file: GatewayConfig): GatewayConfig
  /** Set once the runtime exists: the service validates against it. */
  service(runtime: () => Runtime, invalidateKeys: () => void): ManagementService
  close(): Promise<void>
}

export async function createManagementStore(config: GatewayConfig): Promise<ManagementStore> {
  const l = config.ledger
  if (l.type === 'sqlite') {
    const { SqliteManagementStore } = await import('../control/management/sqlite.ts')
    return new SqliteManagementStore(l.path)
  }
  if (l.type === 'postgres') {
    const { PostgresManagementStore } = await import('../control/management/postgres.ts')
    return PostgresManagementStore.connect(l.url, l.tablePrefix ? `${l.tablePrefix}_` : 'sluice_')
  }
  return new MemoryManagementStore()
}

export async function createFinops(opts: {
  config: GatewayConfig; stores: Stores; logger: Logger; clock: Clock; registry: PolicyRegistry; keyStore: KeyStore | null; store?: ManagementStore
}): Promise<Finops> {
  const { config, stores, logger, clock, registry } = opts
  const store = opts.store ?? (await createManagementStore(config))
  const mlog = logger.child({ component: 'management' })
  let bus: ChangeBus
  // Redis when the counters are shared there (the replicas share it anyway), else PostgreSQL's LISTEN/NOTIFY.
  if (stores.redis) bus = new RedisBus(stores.redis, stores.keyPrefix ?? 'sluice:', mlog)
  else if (store.kind === 'postgres' && config.ledger.type === 'postgres') {
    const { PostgresManagementStore } = await import('../control/management/postgres.ts')
    bus = new PostgresBus((store as InstanceType<typeof PostgresManagementStore>).pgPool, config.ledger.url, config.ledger.tablePrefix ?? 'sluice', mlog)
  } else bus = new LocalBus()
  const directory = new ManagementDirectory(store, bus, config.management.resync, mlog)
  await directory.start()
  const webhooks = new WebhookDispatcher(config.webhooks, config.webhookDelivery, logger.child({ component: 'webhooks' }))
  const once = stores.redis ? new RedisOnceStore(stores.redis, stores.keyPrefix ?? 'sluice:') : new MemoryOnceStore()
  const alerts = new AlertSink(once, webhooks, logger.child({ component: 'alerts' }))
  let service: ManagementService | null = null
  return {
    directory, alerts, webhooks,
    prelude: suspensionCheck(directory, clock),
    effective: (file) => mergeManaged(file, directory.current(), registry, mlog),
    service(runtime, invalidateKeys) {
      service ??= new ManagementService({ directory, keys: opts.keyStore, runtime, registry, now: () => clock.now(), logger: mlog, invalidateKeys })
      return service
    },
    async close() {
      await directory.close()
      await webhooks.close()
      await store.close().catch(() => {})
    },
  }
}
