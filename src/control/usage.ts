import type { FastifyInstance } from 'fastify'
import { GatewayError, GW_ERR } from '../core/errors.ts'
import type { LedgerStore } from '../stores/ledger.ts'
import { parseUsageQuery, usageCsv, UsageParamError } from '../ledger/report.ts'

/** What the usage report needs of the running ledger: its store, and a way to land records still queued. */
export interface UsageSource {
  readonly store: LedgerStore
  flush(timeoutMs?: number): Promise<boolean>
  /** True while the crash journal's replay is still bringing back records an earlier life answered. */
  readonly replaying?: boolean
}

/** How long a report waits for queued records to land before answering from what is stored. */
const FLUSH_WAIT_MS = 2_000

/** `GET /admin/usage?by=consumer|model|backend|day&since=…&until=…&format=json|csv` (contract section 4). */
export function registerUsageRoutes(app: FastifyInstance, source: UsageSource | null, now: () => number = Date.now): void {
  app.get<{ Querystring: { by?: string; since?: string; until?: string; format?: string } }>('/admin/usage', async (req, reply) => {
    if (!source) throw new GatewayError(GW_ERR.SERVICE_UNAVAILABLE, 'No usage ledger is configured (ledger: { type: none }).')
    const format = req.query.format ?? 'json'
    if (format !== 'json' && format !== 'csv') throw new GatewayError(GW_ERR.INVALID_REQUEST, '"format" is json or csv.', { param: 'format' })
    let query
    try {
      query = parseUsageQuery(req.query, now())
    } catch (err) {
      if (err instanceof UsageParamError) throw new GatewayError(GW_ERR.INVALID_REQUEST, err.message, { param: err.param })
      throw err
    }
    // Read-your-writes: records of requests already answered are still in the write-behind queue.
    const flushed = await source.flush(FLUSH_WAIT_MS)
    // During replay the store lacks records that were answered before the restart: no report beats a low one.
    if (!flushed && source.replaying) {
      throw new GatewayError(GW_ERR.SERVICE_UNAVAILABLE, 'The usage ledger is replaying its journal after a restart; try again shortly.', { headers: { 'retry-after': '2' } })
    }
    let rows
    try {
      rows = await source.store.usage(query)
    } catch {
      throw new GatewayError(GW_ERR.SERVICE_UNAVAILABLE, 'The usage ledger is unreachable; try again shortly.')
    }
    if (format === 'csv') return reply.header('content-type', 'text/csv; charset=utf-8').send(usageCsv(rows))
    return { rows }
  })
}
