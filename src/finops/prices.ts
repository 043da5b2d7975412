import type { Snapshot } from '../config/snapshot.ts'
import { PriceTable } from '../pricing/table.ts'
import type { PriceLookup } from './types.ts'

/**
 * Prices for one config snapshot: the public model name first, then the deployment name at the backend
 * that served it (or, before dispatch, at any backend that maps the model), as the ledger prices them.
 */
export function priceLookup(snapshot: Snapshot): PriceLookup {
  const table = new PriceTable(snapshot.config.pricing.models)
  const deploymentsOf = new Map<string, string[]>()
  for (const b of snapshot.backends.values()) {
    for (const [pub, dep] of Object.entries(b.models ?? {})) {
      const list = deploymentsOf.get(pub) ?? []
      list.push(dep)
      deploymentsOf.set(pub, list)
    }
  }
  return (model, backendId) => {
    if (backendId !== null) {
      const dep = snapshot.backends.get(backendId)?.models?.[model]
      return table.priceOf(model, dep)
    }
    return table.priceOf(model, ...(deploymentsOf.get(model) ?? []))
  }
}
