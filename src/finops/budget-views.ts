import type { ConsumerConfig } from '../config/schema.ts'
import type { Runtime } from '../server/runtime.ts'
import { isBudgetInspector, type BudgetInspector, type BudgetView } from '../policies/budget/view.ts'
import type { ExprContext } from '../policies/expr.ts'

/** Every budget policy instance of a runtime, with the products whose consumers it applies to (null: all). */
function budgetPolicies(rt: Runtime): Array<{ policy: BudgetInspector; products: Set<string | null> | null }> {
  const found = new Map<object, { policy: BudgetInspector; products: Set<string | null> | null }>()
  const global = rt.pipelineFor(null).policies
  for (const p of global) if (isBudgetInspector(p)) found.set(p, { policy: p, products: null })
  for (const product of rt.snapshot.products.keys()) {
    for (const p of rt.pipelineFor(product).policies) {
      if (!isBudgetInspector(p)) continue
      const e = found.get(p) ?? { policy: p, products: new Set<string | null>() }
      e.products?.add(product)
      found.set(p, e)
    }
  }
  return [...found.values()]
}

/** The context a budget key sees for a consumer outside any request (request fields empty). */
export function consumerExprContext(c: ConsumerConfig): ExprContext {
  return {
    consumer: { id: c.id, product: c.product ?? '', metadata: c.metadata },
    request: { ip: '', method: '', path: '', headers: {}, model: '', stream: false },
  }
}

/**
 * The budgets of one consumer (for `/v1/sluice/me`), or of every consumer (for `/admin/budgets`): each
 * budget that applies to them, read fresh from the counter store (so it includes every replica's spending).
 * A counter shared by several consumers (e.g. `consumer.product`) is listed once with all of them.
 */
export async function budgetViews(rt: Runtime, consumers: readonly ConsumerConfig[], extraCounters: readonly string[] = []): Promise<Array<BudgetView & { consumers: string[] }>> {
  const out = new Map<string, BudgetView & { consumers: string[] }>()
  const reads: Promise<void>[] = []
  for (const { policy, products } of budgetPolicies(rt)) {
    const byCounter = new Map<string, string[]>()
    for (const c of consumers) {
      if (products !== null && !products.has(c.product ?? null)) continue
      const v = policy.counterValueFor(consumerExprContext(c))
      if (v === null) continue
      const list = byCounter.get(v) ?? []
      list.push(c.id)
      byCounter.set(v, list)
    }
    for (const v of extraCounters) if (!byCounter.has(v)) byCounter.set(v, [])
    for (const [counter, ids] of byCounter) {
      reads.push(policy.inspectBudget(counter).then((view) => { out.set(`${view.scope}|${view.counterKey}|${counter}|${out.size}`, { ...view, consumers: ids }) }))
    }
  }
  await Promise.all(reads)
  return [...out.values()]
}
