import type { Logger } from 'pino'
import type { Clock } from '../core/clock.ts'
import { compile, type CompiledPipeline, type Policy } from '../core/pipeline.ts'
import type { PolicyEntry } from '../config/schema.ts'
import type { Snapshot } from '../config/snapshot.ts'
import type { PolicyDeps, PolicyRegistry, PolicyScope } from '../policies/types.ts'
import type { Stores } from '../stores/types.ts'
import type { MetricsSink } from '../telemetry/sink.ts'
import type { LedgerSink } from '../ledger/ledger.ts'
import type { PolicyTelemetry } from '../telemetry/metrics.ts'
import type { UpstreamClients } from '../upstream/client.ts'
import { Router, type BaseUrlOf } from '../upstream/router.ts'
import { routerEmbeddings } from '../cache/backend-embeddings.ts'
import type { AlertSink } from '../finops/alerts.ts'
import type { ConsumerControl } from '../finops/types.ts'
import { priceLookup } from '../finops/prices.ts'

/** Everything the data plane needs for one config version; swapped as a whole on reload. */
export interface Runtime {
  readonly snapshot: Snapshot
  readonly router: Router
  pipelineFor(productId: string | null): CompiledPipeline
}

export interface RuntimeDeps {
  readonly registry: PolicyRegistry
  readonly clients: UpstreamClients
  readonly baseUrlOf: BaseUrlOf
  readonly clock: Clock
  readonly logger: Logger
  readonly stores: Stores
  readonly metrics: MetricsSink
  readonly telemetry?: PolicyTelemetry
  readonly ledger?: LedgerSink
  readonly alerts?: AlertSink
  readonly consumers?: ConsumerControl
  /** Policies run before the global ones on every request (the consumer-suspension check). */
  readonly prelude?: readonly Policy[]
}

/** Instantiates every policy once per snapshot and compiles one pipeline per product (global scope first). */
export function buildRuntime(snapshot: Snapshot, deps: RuntimeDeps): Runtime {
  const routerFor = (s: Snapshot, purpose: object) =>
    new Router(s, deps.clients, deps.baseUrlOf, { breakers: deps.stores.breakers, inflight: deps.stores.inflight, latency: deps.clients.latency, clock: deps.clock, metrics: deps.metrics, logger: deps.logger.child({ component: 'router', ...purpose }) })
  const router = routerFor(snapshot, {})
  // Policies' embeddings calls (semantic-cache) take the same routes, sharing the breaker store.
  const embed = routerEmbeddings(snapshot, (s) => routerFor(s, { for: 'embeddings' }))
  const backendEndpoint = (id: string) => {
    const b = snapshot.backends.get(id)
    if (!b) return null
    return { url: deps.baseUrlOf(b), headers: b.headers ?? {}, apiKey: b.auth?.apiKey ?? null, managedIdentity: b.auth?.managedIdentity ? { clientId: typeof b.auth.managedIdentity.clientId === 'string' ? b.auth.managedIdentity.clientId : undefined } : null }
  }
  const prices = priceLookup(snapshot)
  const modelNames = [...snapshot.models.keys()]
  const instantiate = (entries: readonly PolicyEntry[], scope: PolicyScope): Policy[] =>
    entries.map((entry) => {
      const [name, options] = Object.entries(entry)[0]!
      const factory = deps.registry.get(name)
      if (!factory) throw new Error(`unknown policy ${name}`) // load already refused this; kept as a guard
      const policyDeps: PolicyDeps = { clock: deps.clock, logger: deps.logger.child({ policy: name }), stores: deps.stores, metrics: deps.metrics, telemetry: deps.telemetry, ledger: deps.ledger, embed, backendEndpoint, scope, prices, modelNames, alerts: deps.alerts, consumers: deps.consumers }
      return factory.create(options, policyDeps)
    })
  const global = [...(deps.prelude ?? []), ...instantiate(snapshot.config.policies, { kind: 'global' })]
  const globalOnly = compile(global, router.dispatch)
  const byProduct = new Map<string, CompiledPipeline>()
  for (const product of snapshot.config.products) {
    const own = instantiate(product.policies, { kind: 'product', productId: product.id })
    byProduct.set(product.id, own.length ? compile([...global, ...own], router.dispatch) : globalOnly)
  }
  return {
    snapshot,
    router,
    pipelineFor: (productId) => (productId === null ? globalOnly : byProduct.get(productId) ?? globalOnly),
  }
}
