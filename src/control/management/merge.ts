import type { Logger } from 'pino'
import type { ConsumerConfig, GatewayConfig, ProductConfig } from '../../config/schema.ts'
import type { PolicyRegistry } from '../../policies/types.ts'
import type { ManagedState } from './store.ts'

/**
 * The configuration the data plane runs: the file's, plus the consumers and products created at run time.
 * The file wins on an id clash (the admin API refuses such ids; a later file edit could still add one).
 * Stored product policies are validated again with their policy's schema, so defaults apply as in a file;
 * a stored entry that no longer validates is left out and logged, never half-applied.
 */
export function mergeManaged(file: GatewayConfig, state: ManagedState, registry: PolicyRegistry, logger: Logger): GatewayConfig {
  if (state.consumers.length === 0 && state.products.length === 0) return file
  const productIds = new Set(file.products.map((p) => p.id))
  const products: ProductConfig[] = [...file.products]
  for (const p of state.products) {
    if (productIds.has(p.id)) continue
    const policies = validatePolicies(p.policies, registry)
    if (policies === null) {
      logger.error({ product: p.id }, 'management: a stored product has policies this build cannot read; it is left out')
      continue
    }
    productIds.add(p.id)
    products.push({ id: p.id, auth: 'any', ...(p.models ? { models: [...p.models] } : {}), policies })
  }
  const consumerIds = new Set(file.consumers.map((c) => c.id))
  const consumers: ConsumerConfig[] = [...file.consumers]
  for (const c of state.consumers) {
    if (consumerIds.has(c.id)) continue
    // A consumer whose product is gone could otherwise call every model: it is left out until fixed.
    if (c.product !== null && !productIds.has(c.product)) {
      logger.warn({ consumer: c.id, product: c.product }, 'management: a stored consumer names an unknown product; it is not served')
      continue
    }
    consumers.push({ id: c.id, ...(c.product !== null ? { product: c.product } : {}), keys: [], metadata: { ...c.metadata } })
  }
  return { ...file, products, consumers }
}

/** Each entry through its policy's schema; null when any fails. */
export function validatePolicies(entries: readonly Record<string, unknown>[], registry: PolicyRegistry): ProductConfig['policies'] | null {
  const out: ProductConfig['policies'] = []
  for (const entry of entries) {
    const keys = Object.keys(entry)
    if (keys.length !== 1) return null
    const factory = registry.get(keys[0]!)
    if (!factory) return null
    const res = factory.schema.safeParse(entry[keys[0]!] ?? {})
    if (!res.success) return null
    out.push({ [keys[0]!]: res.data })
  }
  return out
}
