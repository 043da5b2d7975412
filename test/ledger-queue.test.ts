import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BatchQueue, type BatchingOptions } from '../src/ledger/queue.ts'
import { usageRecordSize } from '../src/ledger/record.ts'
import type { UsageRecord } from '../src/stores/ledger.ts'
import { SqliteLedgerStore } from '../src/stores/sqlite/ledger.ts'
import { usageRecord } from './contract/ledger-store.ts'

const dir = mkdtempSync(join(tmpdir(), 'sluice-ledger-queue-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let files = 0

/** A real SQLite store that can be made to fail, and that remembers the size of each batch written. */
function harness(opts: Partial<BatchingOptions>) {
  const store = new SqliteLedgerStore(join(dir, `q-${files++}.db`))
  const batches: number[] = []
  const state = { failing: false, dropped: 0 }
  const queue = new BatchQueue<UsageRecord>({
    write: async (b) => {
      if (state.failing) throw new Error('store unreachable')
      await store.append(b)
      batches.push(b.length)
    },
    sizeOf: usageRecordSize,
    onDrop: (n) => { state.dropped += n },
  }, opts)
  return { store, queue, batches, state }
}

const rec = (i: number) => usageRecord({ requestId: `q-${String(i).padStart(5, '0')}`, ts: 1_700_000_000_000 + i })
const until = async (cond: () => boolean, what: string) => {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10))
  assert.ok(cond(), `timed out waiting for ${what}`)
}
const tick = () => new Promise((r) => setImmediate(r))

describe('ledger batch queue', () => {
  it('writes when a batch is full by count, not before', async () => {
    const { store, queue, batches } = harness({ batchSize: 10, flushInterval: 60_000 })
    for (let i = 0; i < 9; i++) assert.equal(queue.append(rec(i)), true)
    await tick()
    assert.deepEqual(batches, [])
    for (let i = 9; i < 25; i++) queue.append(rec(i))
    await until(() => queue.stats().queued === 0, 'the full batches to be written')
    assert.deepEqual(batches, [10, 10, 5])
    assert.equal((await store.records()).length, 25)
    await store.close()
  })

  it('splits batches by bytes', async () => {
    const size = usageRecordSize(rec(0))
    const { store, queue, batches } = harness({ batchSize: 1000, batchBytes: size * 4, flushInterval: 60_000 })
    for (let i = 0; i < 10; i++) queue.append(rec(i))
    await until(() => queue.stats().queued === 0, 'the byte-sized batches')
    assert.deepEqual(batches, [4, 4, 2])
    await store.close()
  })

  it('writes a partial batch once the flush interval has passed', async () => {
    const { store, queue, batches } = harness({ batchSize: 1000, flushInterval: 30 })
    queue.append(rec(1))
    queue.append(rec(2))
    await until(() => batches.length === 1, 'the timed flush')
    assert.deepEqual(batches, [2])
    assert.equal((await store.records()).length, 2)
    await store.close()
  })

  it('retries a failed batch with backoff, losing and duplicating nothing', async () => {
    const { store, queue, state } = harness({ batchSize: 5, flushInterval: 10, retryBase: 5, retryMax: 20 })
    state.failing = true
    for (let i = 0; i < 12; i++) queue.append(rec(i))
    await until(() => queue.stats().failures >= 3, 'several failed attempts')
    assert.equal(queue.stats().retrying, true)
    assert.equal(queue.stats().queued + 0, 12 - 5) // one batch in flight, the rest waiting
    state.failing = false
    assert.equal(await queue.flush(10_000), true)
    const ids = (await store.records()).map((r) => r.requestId)
    assert.equal(ids.length, 12)
    assert.equal(new Set(ids).size, 12)
    assert.equal(queue.stats().retrying, false)
    assert.equal(queue.stats().dropped, 0)
    await store.close()
  })

  it('sheds past its bound while the store is down, and counts what it shed', async () => {
    const { store, queue, state } = harness({ batchSize: 10, flushInterval: 10, maxQueue: 50, retryBase: 5, retryMax: 20 })
    state.failing = true
    let accepted = 0
    for (let i = 0; i < 80; i++) if (queue.append(rec(i))) accepted++
    assert.equal(accepted, 50)
    assert.equal(state.dropped, 30)
    assert.equal(queue.stats().dropped, 30)
    const bytesFull = queue.stats().queuedBytes
    assert.ok(bytesFull > 0)
    state.failing = false
    assert.equal(await queue.flush(10_000), true)
    assert.equal((await store.records()).length, 50)
    assert.equal(queue.stats().queuedBytes, 0)
    await store.close()
  })

  it('bounds the queue by bytes as well', async () => {
    const size = usageRecordSize(rec(0))
    const { store, queue, state } = harness({ batchSize: 10, flushInterval: 10, maxQueueBytes: size * 20 + 1, retryBase: 5 })
    state.failing = true
    let accepted = 0
    for (let i = 0; i < 30; i++) if (queue.append(rec(i))) accepted++
    assert.equal(accepted, 20)
    assert.equal(state.dropped, 10)
    state.failing = false
    assert.equal(await queue.flush(10_000), true)
    await store.close()
  })

  it('close() drains everything; a store that stays down is given up on at the deadline, counted as lost', async () => {
    const ok = harness({ batchSize: 100, flushInterval: 60_000 })
    for (let i = 0; i < 42; i++) ok.queue.append(rec(i))
    assert.equal(await ok.queue.close(5_000), 0)
    assert.equal((await ok.store.records()).length, 42)
    assert.equal(ok.queue.append(rec(99)), false, 'a closed queue accepts nothing')
    await ok.store.close()

    const down = harness({ batchSize: 10, flushInterval: 10, retryBase: 5, retryMax: 10 })
    down.state.failing = true
    for (let i = 0; i < 25; i++) down.queue.append(rec(i))
    assert.equal(await down.queue.close(100), 25)
    assert.equal(down.state.dropped, 25)
    await down.store.close()
  })
})
