import { parentPort, workerData } from 'node:worker_threads'
import { lowerThreadPriority } from '../../core/thread-priority.ts'
import { SqliteLedgerStore } from './ledger.ts'

/**
 * The writer's nice value. Where it shares a core with the event loop (one core per gateway, or a pinned
 * process) a batch insert of hundreds of rows would otherwise take whole scheduler slices from requests
 * in flight; at nice 10 it gets ~10 % of a contended core, still far more than the rows need.
 */
const WRITER_NICE = 10

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
  lowerThreadPriority(WRITER_NICE)
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
