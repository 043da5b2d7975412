import type { Logger } from 'pino'
import type { Clock } from '../core/clock.ts'
import type { Snapshot } from '../config/snapshot.ts'
import type { Ledger } from '../ledger/ledger.ts'
import type { Stores } from '../stores/types.ts'
import type { MetricsSink } from '../telemetry/sink.ts'
import { Breakers } from '../upstream/breaker.ts'
import type { BaseUrlOf } from '../upstream/router.ts'
import type { UpstreamClients } from '../upstream/client.ts'
import { AggregateSource } from './aggregate-source.ts'
import { isAggregate, isOpenapi, isUpstream, type McpServerConfig } from './config.ts'
import { Governance } from './governance.ts'
import type { McpMetrics } from './metrics.ts'
import { RestSource } from './rest-source.ts'
import type { ToolSource } from './source.ts'
import { UpstreamSource } from './upstream-source.ts'

export interface McpServerRuntime {
  readonly cfg: McpServerConfig
  readonly source: ToolSource
  /** Set for a passthrough server. */
  readonly upstream: UpstreamSource | null
}

/** The MCP side of one configuration version: built once per snapshot, dropped with it. */
export interface McpRuntime {
  readonly servers: ReadonlyMap<string, McpServerRuntime>
  readonly governance: Governance
}

export interface McpRuntimeDeps {
  readonly clients: UpstreamClients
  readonly baseUrlOf: BaseUrlOf
  readonly stores: Stores
  readonly ledger: Ledger | null
  readonly metrics: McpMetrics
  readonly sink: MetricsSink
  readonly clock: Clock
  readonly logger: Logger
  readonly version: string
}

export function buildMcpRuntime(snapshot: Snapshot, d: McpRuntimeDeps): McpRuntime {
  const section = snapshot.config.mcp
  const breakers = new Breakers(snapshot.backends.values(), d.stores.breakers, d.clock, d.sink, d.logger.child({ component: 'mcp-breakers' }))
  const servers = new Map<string, McpServerRuntime>()
  const logger = d.logger.child({ component: 'mcp' })
  // Members first, so aggregates can refer to the very sources their members use.
  for (const cfg of section.servers) {
    if (isOpenapi(cfg)) {
      const backend = snapshot.backends.get(cfg.openapi.backend)!
      servers.set(cfg.id, {
        cfg, upstream: null,
        source: new RestSource({ serverId: cfg.id, spec: cfg.openapi.spec, operations: cfg.openapi.operations, backend, baseUrl: d.baseUrlOf(backend), clients: d.clients, breakers, maxResultBytes: cfg.maxResultBytes, logger }),
      })
    } else if (isUpstream(cfg)) {
      const upstream = new UpstreamSource(cfg, d.clients, logger, d.version)
      servers.set(cfg.id, { cfg, upstream, source: upstream })
    }
  }
  for (const cfg of section.servers) {
    if (!isAggregate(cfg)) continue
    const members = cfg.aggregate.map((id) => ({ id, source: servers.get(id)!.source }))
    servers.set(cfg.id, { cfg, upstream: null, source: new AggregateSource(cfg.id, members, cfg.separator, cfg.memberTimeout, logger) })
  }
  const governance = new Governance(snapshot, section.servers, d.stores.counters, () => d.clock.now(), d.ledger, d.metrics, logger)
  return { servers, governance }
}
