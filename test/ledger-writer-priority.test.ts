import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ThreadedSqliteLedgerStore } from '../src/stores/sqlite/threaded-ledger.ts'
import { usageRecord } from './contract/ledger-store.ts'

// The SQLite writer thread runs at nice 10, so on a shared core its batch inserts yield to the event loop.
// Read from outside the code under test: every thread's nice value as the kernel reports it (/proc, field 19).
const niceOf = (stat: string) => Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])
const threadNices = () => readdirSync('/proc/self/task').map((tid) => ({ tid, nice: niceOf(readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')) }))
const linux = process.platform === 'linux'
const baseline = linux ? niceOf(readFileSync('/proc/self/stat', 'utf8')) : 0

const dir = mkdtempSync(join(tmpdir(), 'sluice-writer-nice-'))
after(() => rmSync(dir, { recursive: true, force: true }))

test('the ledger writer thread, and only it, runs at nice 10', { skip: !linux || baseline >= 10 }, async () => {
  const store = new ThreadedSqliteLedgerStore(join(dir, 'ledger.db'))
  try {
    // Before the first batch there is no writer: every thread at the process's own priority.
    assert.deepEqual(threadNices().filter((t) => t.nice !== baseline), [])
    await store.append([usageRecord({ requestId: 'nice-1' })])
    const lowered = threadNices().filter((t) => t.nice !== baseline)
    assert.equal(lowered.length, 1, JSON.stringify(threadNices()))
    assert.equal(lowered[0]!.nice, 10)
    // The event loop's own thread is untouched.
    assert.equal(niceOf(readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8')), baseline)
    assert.deepEqual((await store.records()).map((r) => r.requestId), ['nice-1'])
  } finally {
    await store.close()
  }
})
