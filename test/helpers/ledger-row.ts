import type { Gateway } from '../../src/server/gateway.ts'
import type { UsageRecord } from '../../src/stores/ledger.ts'
import { until } from './upstreams.ts'

/** The ledger row of one request, once the ledger has written it (the wait fails when it never appears). */
export async function ledgerRow(gw: Gateway, requestId: string): Promise<UsageRecord> {
  let row: UsageRecord | undefined
  await until(async () => {
    await gw.ledger!.flush(5_000)
    row = (await gw.ledger!.store.records({ requestIds: [requestId] }))[0]
    return row !== undefined
  })
  return row!
}
