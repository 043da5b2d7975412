import type { BackendConfig, ConsumerConfig, GatewayConfig, ModelConfig, PoolConfig, ProductConfig } from './schema.ts'
import { sha256Hex } from '../core/sha256.ts'

/**
 * An immutable, indexed view of one validated configuration. The data plane reads only snapshots; a
 * reload builds a new one and swaps it in one assignment, so a request sees one version from start to end.
 */
export interface Snapshot {
  readonly version: number
  readonly loadedAt: number
  readonly config: GatewayConfig
  readonly backends: ReadonlyMap<string, BackendConfig>
  readonly pools: ReadonlyMap<string, PoolConfig>
  readonly models: ReadonlyMap<string, ModelConfig>
  readonly products: ReadonlyMap<string, ProductConfig>
  readonly consumers: ReadonlyMap<string, ConsumerConfig>
  /** sha256 hex of a key → consumer id. */
  readonly keyDigests: ReadonlyMap<string, string>
  /** sha256 hex of a key → the epoch ms after which it no longer authenticates (keys with `expires`). */
  readonly keyExpiry: ReadonlyMap<string, number>
  /** product id → the models its consumers may call (absent = all). */
  readonly allowedModels: ReadonlyMap<string, ReadonlySet<string>>
}

let versions = 0

export function buildSnapshot(config: GatewayConfig, loadedAt = Date.now()): Snapshot {
  const keyDigests = new Map<string, string>()
  const keyExpiry = new Map<string, number>()
  for (const c of config.consumers) {
    for (const k of c.keys) {
      const digest = 'sha256' in k ? k.sha256.toLowerCase() : sha256Hex(k.value)
      keyDigests.set(digest, c.id)
      if (k.expires !== undefined) keyExpiry.set(digest, k.expires)
    }
  }
  const allowedModels = new Map<string, ReadonlySet<string>>()
  for (const p of config.products) if (p.models) allowedModels.set(p.id, new Set(p.models))
  return Object.freeze({
    version: ++versions,
    loadedAt,
    config,
    backends: new Map(config.backends.map((b) => [b.id, b])),
    pools: new Map(config.pools.map((p) => [p.id, p])),
    models: new Map(config.models.map((m) => [m.name, m])),
    products: new Map(config.products.map((p) => [p.id, p])),
    consumers: new Map(config.consumers.map((c) => [c.id, c])),
    keyDigests,
    keyExpiry,
    allowedModels,
  })
}

/** Whether a product's consumers may call a model. */
export function modelAllowed(s: Snapshot, productId: string | null, model: string): boolean {
  if (productId === null) return true
  const allowed = s.allowedModels.get(productId)
  return allowed === undefined || allowed.has(model)
}
