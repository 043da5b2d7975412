import type { Stores } from '../stores/types.ts'

/**
 * Cache stores live as long as the gateway's Stores, not as long as one config snapshot: a reload rebuilds
 * every policy, and an unchanged cache policy must keep its entries. Keyed by the Stores object (one per
 * gateway, so two gateways in one process never share a cache) and by the policy's scope and options.
 */
const byStores = new WeakMap<Stores, Map<string, unknown>>()

export function sharedStore<T>(stores: Stores, key: string, make: () => T): T {
  let m = byStores.get(stores)
  if (!m) byStores.set(stores, (m = new Map()))
  let s = m.get(key) as T | undefined
  if (s === undefined) m.set(key, (s = make()))
  return s
}

/** Closes every shared cache store (and releases the local embedder) of a gateway's Stores; at shutdown. */
export async function closeSharedStores(stores: Stores): Promise<void> {
  const m = byStores.get(stores)
  if (!m) return
  byStores.delete(stores)
  await Promise.allSettled([...m.values()].map((s) => (s as { close?: () => Promise<void> }).close?.()))
}
