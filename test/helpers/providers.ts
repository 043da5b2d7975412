import type { UsageRecord } from '../../src/stores/ledger.ts'
import { SqliteLedgerStore } from '../../src/stores/sqlite/ledger.ts'
import { startTestGateway, type TestGateway } from './gateway.ts'

export const SLUICE_KEY = 'sk-sluice-providers-test'

/** A gateway with a real (in-memory) SQLite ledger, and a reader of its rows by request id. */
export async function startLedgeredGateway(yaml: string): Promise<TestGateway & { rows(): Promise<Map<string, UsageRecord>> }> {
  const store = new SqliteLedgerStore(':memory:')
  const tg = await startTestGateway(yaml, { ledgerStore: store })
  return {
    ...tg,
    async rows() {
      if (!(await tg.gw.ledger!.flush(5000))) throw new Error('the ledger did not flush in time')
      return new Map((await store.records()).map((r) => [r.requestId, r]))
    },
  }
}
