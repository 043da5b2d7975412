import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import type { GatewayError } from '../src/core/errors.ts'
import { Journal } from '../src/ledger/journal.ts'
import { Ledger } from '../src/ledger/ledger.ts'
import { registerUsageRoutes } from '../src/control/usage.ts'
import { buildSnapshot } from '../src/config/snapshot.ts'
import { loadConfigText } from '../src/config/load.ts'
import { builtinPolicies } from '../src/policies/registry.ts'
import { SqliteLedgerStore } from '../src/stores/sqlite/ledger.ts'
import type { LedgerStore, UsageRecord } from '../src/stores/ledger.ts'
import { usageRecord } from './contract/ledger-store.ts'

const root = mkdtempSync(join(tmpdir(), 'sluice-replay-'))
after(() => rmSync(root, { recursive: true, force: true }))
const DEAD_PID = spawnSync(process.execPath, ['-e', '0']).pid
const die = (dir: string) => writeFileSync(join(dir, 'ledger-0.lock'), JSON.stringify({ pid: DEAD_PID, host: hostname(), at: new Date().toISOString() }))

/** A SQLite store whose writes wait for `open()`: replay can be watched while it is still running. */
class GatedStore {
  private release!: () => void
  private readonly gate = new Promise<void>((r) => { this.release = r })
  constructor(readonly inner: SqliteLedgerStore) {}
  open(): void { this.release() }
  store(): LedgerStore {
    const inner = this.inner
    const gate = this.gate
    return {
      type: 'sqlite',
      async append(r) { await gate; return inner.append(r) },
      async appendMessages(r) { await gate; return inner.appendMessages(r) },
      usage: (q) => inner.usage(q), records: (q) => inner.records(q), messages: (q) => inner.messages(q), ping: () => inner.ping(), close: () => inner.close(),
    }
  }
}

test('during replay the usage report refuses to undercount; once replay is done it counts every record, and the replay status says so', async () => {
  const dir = join(root, 'journal')
  const N = 1200
  const past = Journal.open({ dir, maxBytes: 1 << 26 })
  for (let i = 0; i < N; i++) past.append('usage', usageRecord({ requestId: `old-${i}`, recordId: `old-rec-${i}`, ts: Date.parse('2026-03-01T10:00:00Z') + i }) satisfies UsageRecord)
  die(dir) // SIGKILL: nothing committed, the journal is all there is

  const cfg = loadConfigText('ledger: { type: none }\n', { registry: builtinPolicies() })
  assert.ok(cfg.ok)
  const snap = buildSnapshot(cfg.config)
  const gated = new GatedStore(new SqliteLedgerStore(join(root, 'ledger.db')))
  const ledger = new Ledger({ store: gated.store(), snapshot: () => snap, journal: Journal.open({ dir, maxBytes: 1 << 26 }), batching: { batchSize: 100, flushInterval: 5 } })
  const app = Fastify()
  // As the admin plane answers errors (src/control/admin.ts).
  app.setErrorHandler((err: GatewayError, _req, reply) => { void reply.code(err.status).headers(err.headers).send(err.toJSON()) })
  registerUsageRoutes(app, ledger)
  try {
    assert.equal(ledger.replayStatus().state, 'running')
    assert.equal(ledger.replaying, true)
    const during = await app.inject({ url: '/admin/usage?by=consumer' })
    assert.equal(during.statusCode, 503)
    assert.equal(during.headers['retry-after'], '2')
    assert.equal((JSON.parse(during.body) as { error: { code: string } }).error.code, 'service_unavailable')

    gated.open()
    assert.equal(await ledger.flush(20_000), true)
    const status = ledger.replayStatus()
    assert.equal(status.state, 'done')
    assert.equal(status.records, N)
    const afterReplay = await app.inject({ url: '/admin/usage?by=consumer' })
    assert.equal(afterReplay.statusCode, 200)
    assert.deepEqual((JSON.parse(afterReplay.body) as { rows: { key: string; requests: number }[] }).rows.map((r) => [r.key, r.requests]), [['team-a', N]])
  } finally {
    await app.close()
    await ledger.close()
  }
  // Committed and closed cleanly: a next start has nothing to replay.
  const next = Journal.open({ dir, maxBytes: 1 << 26 })
  assert.equal(next.replayPending, false)
  next.close()
})

test('a journal at its bound sheds new records and counts them, as the queue does; what it accepted is all written', async () => {
  const dir = join(root, 'bounded')
  const cfg = loadConfigText('ledger: { type: none }\n', { registry: builtinPolicies() })
  assert.ok(cfg.ok)
  const snap = buildSnapshot(cfg.config)
  const sqlite = new SqliteLedgerStore(join(root, 'bounded.db'))
  const gated = new GatedStore(sqlite) // the store is down: nothing commits, so nothing leaves the journal
  let shed = 0
  const ledger = new Ledger({ store: gated.store(), snapshot: () => snap, journal: Journal.open({ dir, maxBytes: 64 * 1024 }), metrics: { ledgerDropped: (k: number) => { shed += k } } as never, batching: { flushInterval: 5 } })
  const log = (i: number) => ({ ts: 1000 + i, requestId: `m-${i}`, consumer: 'team-a', product: null, model: 'gpt-4o', prompt: 'p'.repeat(200), completion: 'c', truncated: false })
  for (let i = 0; i < 1000; i++) ledger.logMessages(log(i))
  const stats = ledger.stats()
  assert.ok(stats.journal!.refused > 0 && stats.journal!.appended > 0, JSON.stringify(stats.journal))
  assert.equal(stats.journal!.appended + stats.journal!.refused, 1000)
  assert.equal(stats.messages.dropped, stats.journal!.refused)
  assert.equal(shed, stats.journal!.refused)
  assert.ok(stats.journal!.bytes <= 64 * 1024)
  gated.open()
  assert.equal(await ledger.flush(20_000), true)
  assert.equal((await sqlite.messages()).length, stats.journal!.appended)
  await ledger.close()
})
