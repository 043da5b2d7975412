import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomBytes, randomInt } from 'node:crypto'
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { SqliteLedgerStore } from '../src/stores/sqlite/ledger.ts'
import { authHeaders, serviceAvailable } from './helpers/gateway.ts'
import { freePort, spawnGateway, type GatewayProcess } from './helpers/process.ts'

/**
 * Issue 18: a gateway killed with SIGKILL under concurrent load, then restarted, has exactly one ledger row
 * per successful answer its clients received: none lost (the journal is written before the answer is
 * sent, and replayed at start), none doubled (inserts are idempotent by record id).
 */
const root = mkdtempSync(join(tmpdir(), 'sluice-ledger-crash-'))
after(() => rmSync(root, { recursive: true, force: true }))

const PG_URL = 'postgres://postgres@127.0.0.1:5432/test'
const pgUp = await serviceAvailable('postgres')

/** Concurrent clients of each round. */
const CLIENTS = 16

/** Three rounds, each with its own write-behind pace: nothing, part, or nearly all committed at the kill. */
const ROUNDS = [
  { flushInterval: '30s', batchSize: 5000 },
  { flushInterval: '150ms', batchSize: 200 },
  { flushInterval: '10ms', batchSize: 25 },
] as const

const yaml = (port: number, adminPort: number, ledger: string) => `
listen: { host: 127.0.0.1, port: ${port}, shutdownGrace: 5s }
admin: { host: 127.0.0.1, port: ${adminPort}, token: test-admin-token-crash }
logging: { level: warn }
${ledger}
backends:
  - { id: m, type: mock, latency: 10ms, tokensPerSecond: 2000, completionTokens: 6 }
models:
  - { name: gpt-4o-mini, target: m }
consumers:
  - { id: team-a, keys: [ { value: sk-test-key-team-a } ] }
`

/**
 * Concurrent clients (JSON and streams) until the gateway dies; it is killed once `killAfter` answers are in,
 * plus a random few ms, so the kill lands at a different moment of the request/flush cycle every time.
 * Returns the ids of the requests whose full successful answer reached the client, and of those that were
 * in flight when the process died (sent, never answered).
 */
async function loadUntilKilled(gp: GatewayProcess, tag: string, killAfter: number): Promise<{ answered: string[]; cut: string[] }> {
  const answered: string[] = []
  const cut: string[] = []
  let killed = false
  const worker = async (w: number) => {
    for (let i = 0; ; i++) {
      const id = `${tag}-${w}-${i}`
      const stream = (w + i) % 3 === 0
      try {
        const res = await fetch(`${gp.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { ...authHeaders(), 'x-request-id': id },
          body: JSON.stringify({ model: 'gpt-4o-mini', stream, messages: [{ role: 'user', content: `request ${id}` }] }),
          signal: AbortSignal.timeout(20_000),
        })
        const text = await res.text()
        const whole = stream ? text.endsWith('data: [DONE]\n\n') : (JSON.parse(text) as { usage?: unknown }).usage !== undefined
        if (res.status === 200 && whole) answered.push(id)
        else if (!killed) assert.fail(`request ${id} failed before the kill: ${res.status} ${text.slice(0, 200)}`)
      } catch (err) {
        if (killed) { cut.push(id); return } // the process is gone: this answer never reached us
        throw err
      }
      if (!killed && answered.length >= killAfter) {
        killed = true
        setTimeout(() => gp.child.kill('SIGKILL'), randomInt(0, 25))
      }
    }
  }
  await Promise.all(Array.from({ length: CLIENTS }, (_, w) => worker(w)))
  assert.equal(await gp.exited, null, 'the gateway died of the signal')
  return { answered, cut }
}

/** Polls `/readyz` until the journal's replay is done (a wait that times out fails). */
async function replayDone(url: string): Promise<{ replay: string; replayedRecords: number }> {
  const end = Date.now() + 30_000
  let last = ''
  while (Date.now() < end) {
    const res = await fetch(`${url}/readyz`)
    const body = (await res.json()) as { ledger?: { replay: string; replayedRecords: number } }
    last = JSON.stringify(body)
    if (body.ledger && (body.ledger.replay === 'done' || body.ledger.replay === 'none')) return body.ledger
    assert.notEqual(body.ledger?.replay, 'failed', last)
    await new Promise((r) => setTimeout(r, 25))
  }
  assert.fail(`replay did not finish: ${last}`)
}

interface Engine {
  readonly name: string
  ledgerYaml(round: (typeof ROUNDS)[number]): string
  /** Request ids of every row in the ledger. */
  rows(): Promise<string[]>
  close(): Promise<void>
}

async function crashRounds(engine: Engine, dir: string): Promise<void> {
  // Every start listens on ports the kernel picks (read from its start-up line): a port reused across a restart
  // can be taken in between by any socket of a test running beside this one (EADDRINUSE in CI).
  mkdirSync(dir, { recursive: true })
  const file = join(dir, 'gateway.yaml')
  const answered: string[] = []
  const cut = new Set<string>()
  writeFileSync(file, yaml(0, 0, engine.ledgerYaml(ROUNDS[0])))
  let gp = await spawnGateway(file)
  try {
    for (const [r] of ROUNDS.entries()) {
      const killAfter = randomInt(40, 160)
      const got = await loadUntilKilled(gp, `${engine.name}-r${r}`, killAfter)
      assert.ok(got.answered.length >= killAfter, `answered ${got.answered.length}`)
      answered.push(...got.answered)
      for (const id of got.cut) cut.add(id)

      // Restart on the same ledger and journal (with the next round's write-behind pace): replay brings back
      // what the store did not have yet. The restarted process is the one the next round kills.
      const next = ROUNDS[r + 1] ?? ROUNDS[0]
      writeFileSync(file, yaml(0, 0, engine.ledgerYaml(next)))
      gp = await spawnGateway(file)
      const status = await replayDone(gp.url)
      const ids = await engine.rows()
      assert.equal(ids.length, new Set(ids).size, `round ${r}: duplicate request ids in the ledger`)
      const have = new Set(ids)
      const want = new Set(answered)
      const missing = answered.filter((id) => !have.has(id))
      // A row without an answer is possible only for a request the kill caught in the microseconds between its
      // journal write and its send (the backend did answer it): it must be one that was cut in flight. Answers
      // that end in one turn of the event loop share one journal write, so a kill there can leave a row for
      // each of them: at most one per client in flight.
      const extra = ids.filter((id) => !want.has(id))
      const unexplained = extra.filter((id) => !cut.has(id))
      assert.deepEqual({ missing, unexplained }, { missing: [], unexplained: [] }, `round ${r} (kill after ${killAfter}, replayed ${status.replayedRecords})`)
      assert.ok(extra.length <= CLIENTS, `round ${r}: ${extra.length} rows for requests cut in flight: ${extra.join(', ')}`)
      for (const id of extra) answered.push(id) // billed, and from now on expected
      assert.equal(ids.length, answered.length)
      // The report agrees with the rows.
      const report = (await (await fetch(`${gp.adminUrl}/admin/usage?by=consumer`, { headers: { authorization: 'Bearer test-admin-token-crash' } })).json()) as { rows: { key: string; requests: number }[] }
      assert.deepEqual(report.rows.map((x) => [x.key, x.requests]), [['team-a', answered.length]])
    }
  } catch (err) {
    // A failed round leaves its restarted gateway running: it must not outlive the test.
    gp.child.kill('SIGKILL')
    throw err
  }
  gp.child.kill('SIGTERM')
  assert.equal(await gp.exited, 0, gp.output())
  // A clean stop with everything committed leaves no journal to replay.
  assert.deepEqual(readdirSync(join(dir, 'journal')).filter((f) => f.endsWith('.journal')), [])
}

describe('SIGKILL under load, restart: the ledger holds exactly the answered requests', () => {
  it('SQLite, three kills at random moments', async () => {
    const dir = join(root, 'sqlite')
    const path = join(dir, 'ledger.db')
    await crashRounds({
      name: 'sqlite',
      ledgerYaml: (r) => `ledger: { type: sqlite, path: ${path}, flushInterval: ${r.flushInterval}, batchSize: ${r.batchSize} }`,
      rows: async () => {
        const s = new SqliteLedgerStore(path)
        try { return (await s.records()).map((x) => x.requestId) } finally { await s.close() }
      },
      close: async () => {},
    }, dir)
  })

  it('PostgreSQL, three kills at random moments', { skip: !pgUp }, async () => {
    const dir = join(root, 'pg')
    const prefix = `k_${randomBytes(5).toString('hex')}_`
    const direct = new pg.Pool({ connectionString: PG_URL, max: 2 })
    try {
      await crashRounds({
        name: 'pg',
        ledgerYaml: (r) => `ledger: { type: postgres, url: "${PG_URL}", tablePrefix: ${prefix}, flushInterval: ${r.flushInterval}, batchSize: ${r.batchSize}, journal: { dir: ${join(dir, 'journal')} } }`,
        rows: async () => (await direct.query<{ request_id: string }>(`SELECT request_id FROM ${prefix}usage_records`)).rows.map((x) => x.request_id),
        close: async () => {},
      }, dir)
    } finally {
      await direct.query(`DROP TABLE IF EXISTS ${prefix}usage_records, ${prefix}message_logs, ${prefix}ledger_migrations`).catch(() => {})
      await direct.end()
    }
  })

  it('a replica that never comes back: `sluice ledger recover --journal DIR` writes its journal into the shared store', { skip: !pgUp }, async () => {
    const dir = join(root, 'recover')
    const journalDir = join(dir, 'journal')
    const prefix = `v_${randomBytes(5).toString('hex')}_`
    const direct = new pg.Pool({ connectionString: PG_URL, max: 2 })
    const port = await freePort()
    const file = join(dir, 'gateway.yaml')
    try {
      mkdirSync(dir, { recursive: true })
      writeFileSync(file, yaml(port, await freePort(), `ledger: { type: postgres, url: "${PG_URL}", tablePrefix: ${prefix}, flushInterval: 30s, batchSize: 5000, journal: { dir: ${journalDir} } }`))
      const gp = await spawnGateway(file, port, { SLUICE_WORKER_ID: 'replica-b' })
      const { answered, cut } = await loadUntilKilled(gp, 'orphan', randomInt(40, 120))
      const count = async () => (await direct.query<{ n: number }>(`SELECT COUNT(*)::int AS n FROM ${prefix}usage_records`)).rows[0]!.n
      assert.ok((await count()) < answered.length, 'the killed replica had not written everything')
      const run = () => spawnSync(process.execPath, ['bin/sluice.js', 'ledger', 'recover', '--journal', journalDir, '--config', file], { encoding: 'utf8' })
      const first = run()
      assert.equal(first.status, 0, first.stderr)
      assert.match(first.stdout, /slot replica-b: \d+ usage records/)
      const ids = (await direct.query<{ request_id: string }>(`SELECT request_id FROM ${prefix}usage_records`)).rows.map((x) => x.request_id)
      const extra = ids.filter((id) => !answered.includes(id))
      // As in the rounds above: a row without an answer only for a request cut in flight, at most one per client
      // (answers that end in one turn share one journal write, and the kill can land between it and their send).
      assert.deepEqual(extra.filter((id) => !cut.includes(id)), [], `rows without an answer that was not cut in flight: ${extra.join(', ')}`)
      assert.ok(extra.length <= CLIENTS, `${extra.length} rows for requests cut in flight: ${extra.join(', ')}`)
      assert.deepEqual([...ids].filter((id) => !extra.includes(id)).sort(), [...answered].sort())
      // Nothing is left to recover, and a second run writes nothing twice.
      assert.deepEqual(readdirSync(journalDir).filter((f) => f.endsWith('.journal')), [])
      const second = run()
      assert.equal(second.status, 0, second.stderr)
      assert.match(second.stdout, /recovered 0 usage records and 0 message logs from 0 journals/)
      assert.equal(await count(), answered.length + extra.length)
    } finally {
      await direct.query(`DROP TABLE IF EXISTS ${prefix}usage_records, ${prefix}message_logs, ${prefix}ledger_migrations`).catch(() => {})
      await direct.end()
    }
  })
})
