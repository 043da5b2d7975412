import type { Logger } from 'pino'
import type { z } from 'zod'
import type { Clock } from '../core/clock.ts'
import type { Policy } from '../core/pipeline.ts'
import type { Stores } from '../stores/types.ts'
import type { MetricsSink } from '../telemetry/sink.ts'
import type { LedgerSink } from '../ledger/ledger.ts'
import type { PolicyTelemetry } from '../telemetry/metrics.ts'
import type { EmbedFn } from '../cache/backend-embeddings.ts'
import type { EndpointResolver } from './content-safety/types.ts'
import type { AlertSink } from '../finops/alerts.ts'
import type { ConsumerControl, PriceLookup } from '../finops/types.ts'

export type PolicyScope = { readonly kind: 'global' } | { readonly kind: 'product'; readonly productId: string }

/** What a policy may use; handed to factories when a snapshot is compiled. */
export interface PolicyDeps {
  readonly clock: Clock
  readonly logger: Logger
  readonly stores: Stores
  readonly metrics: MetricsSink
  /** Custom-dimension metrics (emit-token-metric); absent only where a policy is built outside a gateway. */
  readonly telemetry?: PolicyTelemetry
  /** The usage ledger (log-messages writes to it); absent with `ledger: { type: none }`. */
  readonly ledger?: LedgerSink
  /** Embeddings from a configured backend or pool through the gateway's routing (semantic-cache). */
  readonly embed?: EmbedFn
  /** A `backends` entry as a service endpoint (url, key or managed identity, headers): content-safety's remote engines. */
  readonly backendEndpoint?: EndpointResolver
  readonly scope: PolicyScope
  /** The configured model names (and their targets): what a token-counting policy preloads tokenizers for. */
  readonly modelNames?: readonly string[]
  /** The configured price table (budget); absent only where a policy is built outside a gateway. */
  readonly prices?: PriceLookup
  /** Threshold alerts to the log and webhooks (budget, token quotas). */
  readonly alerts?: AlertSink
  /** Suspends consumers (budget `onExceeded: suspend`). */
  readonly consumers?: ConsumerControl
}

export interface PolicyFactory<C = unknown> {
  readonly name: string
  /** The one validator for this policy's options, run by `sluice check`, at load and at reload. */
  readonly schema: z.ZodType<C>
  create(config: C, deps: PolicyDeps): Policy
}

export type PolicyRegistry = ReadonlyMap<string, PolicyFactory<any>>

export function registryOf(factories: readonly PolicyFactory<any>[]): PolicyRegistry {
  return new Map(factories.map((f) => [f.name, f]))
}
