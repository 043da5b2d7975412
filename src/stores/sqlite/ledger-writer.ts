import { parentPort, workerData } from 'node:worker_threads'
import { SqliteLedgerStore } from './ledger.ts'

/**
 * The ledger's SQLite writer thread. better-sqlite3 is synchronous, and a commit that triggers a WAL
 * checkpoint fsyncs: tens of milliseconds that must never stall the event loop serving requests.
 */
export interface WriteRequest {
  readonly id: number
  readonly kind: 'usage' | 'messages' | 'close'
  readonly records?: readonly unknown[]
}
export interface WriteReply { readonly id: number; readonly ok: boolean; readonly message?: string }

if (parentPort) {
  const port = parentPort
  const store = new SqliteLedgerStore((workerData as { path: string }).path)
  port.on('message', (msg: WriteRequest) => {
    void (async () => {
      try {
        if (msg.kind === 'close') {
          await store.close()
        } else if (msg.kind === 'usage') {
          await store.append(msg.records as Parameters<SqliteLedgerStore['append']>[0])
        } else {
          await store.appendMessages(msg.records as Parameters<SqliteLedgerStore['appendMessages']>[0])
        }
        port.postMessage({ id: msg.id, ok: true } satisfies WriteReply)
        if (msg.kind === 'close') port.close()
      } catch (err) {
        port.postMessage({ id: msg.id, ok: false, message: (err as Error).message } satisfies WriteReply)
      }
    })()
  })
}
