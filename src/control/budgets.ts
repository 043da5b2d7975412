import type { FastifyInstance } from 'fastify'
import type { Runtime } from '../server/runtime.ts'
import { budgetViews } from '../finops/budget-views.ts'
import type { ManagementDirectory } from './management/directory.ts'

/**
 * `GET /admin/budgets[?consumer=ID][&counter=VALUE]`: every budget with its spending this period, read
 * from the shared counter store, for every consumer it applies to (or one; `counter` adds a counter value
 * that no consumer maps to, e.g. a model name).
 */
export function registerBudgetRoutes(app: FastifyInstance, runtime: () => Runtime, directory: ManagementDirectory, clock: () => number = Date.now): void {
  app.get<{ Querystring: { consumer?: string; counter?: string } }>('/admin/budgets', async (req) => {
    const rt = runtime()
    const all = [...rt.snapshot.consumers.values()]
    const consumers = typeof req.query.consumer === 'string' ? all.filter((c) => c.id === req.query.consumer) : all
    const extra = typeof req.query.counter === 'string' ? [req.query.counter.slice(0, 512)] : []
    const budgets = await budgetViews(rt, consumers, extra)
    const now = clock()
    const suspended = consumers.flatMap((c) => {
      const s = directory.suspension(c.id, now)
      return s === null ? [] : [{ consumer: c.id, until: s.until === null ? null : new Date(s.until).toISOString(), reason: s.reason, by: s.by }]
    })
    return { budgets, suspended }
  })
}
