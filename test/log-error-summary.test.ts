// The gateway's logger summarises every `err` it is given (kind, message, code; never a stack). The stores,
// breakers and the ledger log their failures as `{ err: { message } }`: that message must reach the log, not
// "[object Object]" (what the summary made of such an object before).
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import pino from 'pino'
import { errorSummary } from '../src/server/process-guards.ts'
import { startTestGateway, authHeaders, BASIC_YAML, type TestGateway } from './helpers/gateway.ts'
import { ledgerRow } from './helpers/ledger-row.ts'
import { until } from './helpers/upstreams.ts'

describe('errorSummary', () => {
  test("a call site's own summary keeps its message and code", () => {
    assert.deepEqual(errorSummary({ message: 'connect ECONNREFUSED 127.0.0.1:1', code: 'ECONNREFUSED' }), { type: 'Error', message: 'connect ECONNREFUSED 127.0.0.1:1', code: 'ECONNREFUSED' })
    assert.deepEqual(errorSummary({ message: 'no such table' }), { type: 'Error', message: 'no such table' })
  })

  test('an Error gives its name and message, no stack; a summary it made is kept as it is', () => {
    const e = Object.assign(new TypeError('bad thing'), { code: 'E_BAD' })
    const s = errorSummary(e)
    assert.deepEqual(s, { type: 'TypeError', message: 'bad thing', code: 'E_BAD' })
    assert.deepEqual(errorSummary(s), s)
  })

  test('what has no message of its own is described by its string form, bounded', () => {
    assert.deepEqual(errorSummary('plain words'), { type: 'string', message: 'plain words' })
    assert.deepEqual(errorSummary(42), { type: 'number', message: '42' })
    assert.deepEqual(errorSummary({ reason: 'x' }), { type: 'object', message: '[object Object]' })
    const long = errorSummary({ message: 'x'.repeat(5000) })
    assert.ok((long.message as string).length <= 210, `${(long.message as string).length} characters`)
    assert.ok((long.message as string).length >= 200, 'bounded, not emptied')
  })
})

describe('a ledger write failure, in the log of a running gateway', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-log-err-'))
  const path = join(dir, 'ledger.db')
  const lines: Record<string, unknown>[] = []
  const sink = new Writable({ write(chunk, _enc, cb) { for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l)); cb() } })
  let tg: TestGateway
  before(async () => {
    tg = await startTestGateway(`ledger: { type: sqlite, path: ${path}, flushInterval: 20ms }\n${BASIC_YAML}`, { logger: pino({ level: 'info' }, sink) })
  })
  after(async () => { await tg?.close(); rmSync(dir, { recursive: true, force: true }) })

  const ask = async (id: string) => {
    const res = await fetch(`${tg.url}/v1/chat/completions`, { method: 'POST', headers: { ...authHeaders(), 'x-request-id': id }, body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }) })
    assert.equal(res.status, 200)
    await res.text()
  }
  const failures = () => lines.filter((l) => l.msg === 'ledger: writing usage records failed; retrying with backoff')

  test("the warning carries SQLite's own reason; the record lands once the table is back", async () => {
    await ask('log-err-1')
    assert.equal((await ledgerRow(tg.gw, 'log-err-1')).status, 200)
    assert.equal(failures().length, 0, 'a write that works logs no failure')
    // Another connection moves the table away: the writer's inserts fail until it is back.
    const db = new Database(path)
    try {
      db.exec('ALTER TABLE usage_records RENAME TO usage_records_away')
      await ask('log-err-2')
      await until(() => failures().length > 0, 10_000)
      const err = failures()[0]!.err as { type: string; message: string }
      assert.match(err.message, /no such table/, JSON.stringify(err))
      assert.equal(err.type, 'Error')
      assert.ok(!JSON.stringify(failures()[0]).includes('    at '), 'no stack')
      db.exec('ALTER TABLE usage_records_away RENAME TO usage_records')
    } finally { db.close() }
    assert.equal((await ledgerRow(tg.gw, 'log-err-2')).status, 200)
    await until(() => lines.some((l) => l.msg === 'ledger: writing usage records recovered'), 10_000)
  })
})
