import { Worker } from 'node:worker_threads'
import type { LedgerStore, MessageRecord, RecordQuery, UsageQuery, UsageRecord, UsageRow } from '../ledger.ts'
import { SqliteLedgerStore } from './ledger.ts'
import type { WriteReply, WriteRequest } from './ledger-writer.ts'

function writerUrl(): URL {
  return import.meta.url.endsWith('.ts') ? new URL('./ledger-writer-boot.mjs', import.meta.url) : new URL('./ledger-writer.js', import.meta.url)
}

/**
 * The SQLite ledger as the gateway uses it: batches are written by a worker thread (its own connection),
 * reports are read on the main thread (WAL lets readers and the writer work at once). A crashed writer is
 * replaced on the next batch; the batch it held fails and the queue retries it.
 */
export class ThreadedSqliteLedgerStore implements LedgerStore {
  readonly type = 'sqlite' as const
  private readonly reader: SqliteLedgerStore
  private worker: Worker | null = null
  private readonly pending = new Map<number, { resolve: () => void; reject: (err: Error) => void }>()
  private nextId = 1

  constructor(private readonly path: string) {
    // Opening here applies the migrations before the writer starts.
    this.reader = new SqliteLedgerStore(path)
  }

  append(records: readonly UsageRecord[]): Promise<void> {
    return records.length ? this.send('usage', records) : Promise.resolve()
  }

  appendMessages(records: readonly MessageRecord[]): Promise<void> {
    return records.length ? this.send('messages', records) : Promise.resolve()
  }

  usage(query: UsageQuery): Promise<UsageRow[]> { return this.reader.usage(query) }
  records(query?: RecordQuery): Promise<UsageRecord[]> { return this.reader.records(query) }
  messages(query?: RecordQuery): Promise<MessageRecord[]> { return this.reader.messages(query) }
  ping(): Promise<boolean> { return this.reader.ping() }

  async close(): Promise<void> {
    if (this.worker) {
      const w = this.worker
      await this.send('close').catch(() => {})
      await w.terminate().catch(() => 0)
      this.worker = null
    }
    await this.reader.close()
  }

  private send(kind: WriteRequest['kind'], records?: readonly unknown[]): Promise<void> {
    const worker = this.writer()
    const id = this.nextId++
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      worker.postMessage({ id, kind, records } satisfies WriteRequest)
    })
  }

  private writer(): Worker {
    if (this.worker) return this.worker
    const worker = new Worker(writerUrl(), { workerData: { path: this.path }, execArgv: [] })
    worker.on('message', (reply: WriteReply) => {
      const p = this.pending.get(reply.id)
      if (!p) return
      this.pending.delete(reply.id)
      if (reply.ok) p.resolve()
      else p.reject(new Error(`ledger write failed: ${reply.message ?? 'unknown error'}`))
    })
    const lost = (why: string) => {
      if (this.worker === worker) this.worker = null
      for (const p of this.pending.values()) p.reject(new Error(`ledger writer stopped: ${why}`))
      this.pending.clear()
    }
    worker.on('error', (err) => lost(err.message))
    worker.on('exit', (code) => lost(`exit ${code}`))
    this.worker = worker
    return worker
  }
}
