import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import pino from 'pino'
import { serviceAvailable } from './helpers/gateway.ts'
import { MemoryResponseStore, type ResponseStore, type StoredResponse } from '../src/responses/store.ts'
import { SqliteResponseStore } from '../src/responses/sqlite-store.ts'
import { PostgresResponseStore } from '../src/responses/postgres-store.ts'
import { ResponsesService } from '../src/responses/service.ts'
import { responsesSection } from '../src/responses/config.ts'

// The three Responses stores behave alike (ownership, expiry, chains, deletion), and the service on top of them
// enforces retention and the chain bound with the documented errors.
const pgUp = await serviceAvailable('postgres')
const dir = mkdtempSync(join(tmpdir(), 'sluice-responses-store-'))
const pgPrefix = `rst${randomUUID().slice(0, 8)}_`
const closers: Array<() => Promise<void>> = []

after(async () => {
  for (const c of closers) await c()
  rmSync(dir, { recursive: true, force: true })
  if (pgUp) {
    const c = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/test' })
    await c.connect()
    await c.query(`DROP TABLE IF EXISTS "${pgPrefix}responses"`)
    await c.end()
  }
})

const DAY = 86_400_000
const T0 = 1_800_000_000_000
const row = (id: string, previousId: string | null, consumerId = 'c1', expiresAt = T0 + DAY): StoredResponse => ({
  id, consumerId, previousId, backendId: null, model: 'm', createdAt: T0, expiresAt,
  input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: `in ${id}` }], id: `msg_in_${id}` }],
  output: [{ type: 'message', role: 'assistant', id: `msg_out_${id}`, content: [{ type: 'output_text', text: `out ${id}` }] }],
  response: { id, object: 'response' },
})

async function behaves(store: ResponseStore): Promise<void> {
  const p = `${randomUUID().slice(0, 6)}_`
  await store.put(row(`${p}r1`, null))
  await store.put(row(`${p}r2`, `${p}r1`))
  await store.put(row(`${p}r3`, `${p}r2`))
  await store.put(row(`${p}other`, null, 'c2'))
  await store.put(row(`${p}old`, null, 'c1', T0 - 1))

  assert.deepEqual((await store.get(`${p}r2`, 'c1', T0))?.output, row(`${p}r2`, null).output)
  assert.equal(await store.get(`${p}r2`, 'c2', T0), null, 'another consumer does not see it')
  assert.equal(await store.get(`${p}old`, 'c1', T0), null, 'expired')
  assert.deepEqual((await store.chain(`${p}r3`, 'c1', T0, 10)).map((r) => r.id), [`${p}r1`, `${p}r2`, `${p}r3`])
  assert.deepEqual((await store.chain(`${p}r3`, 'c1', T0, 2)).map((r) => r.id), [`${p}r2`, `${p}r3`], 'bounded to the newest')
  assert.deepEqual(await store.chain(`${p}r3`, 'c2', T0, 10), [])
  assert.equal(await store.delete(`${p}r2`, 'c2'), false, 'not the owner')
  assert.equal(await store.delete(`${p}r2`, 'c1'), true)
  assert.deepEqual((await store.chain(`${p}r3`, 'c1', T0, 10)).map((r) => r.id), [`${p}r3`], 'the chain stops at the gap')
  assert.ok((await store.purge(T0)) >= 1)
  assert.equal(await store.get(`${p}old`, 'c1', 0), null, 'purged, whatever the clock says')
  assert.ok(await store.get(`${p}r1`, 'c1', 0), 'unexpired rows stay')
}

describe('Responses stores', () => {
  it('in process', async () => behaves(new MemoryResponseStore()))

  it('SQLite', async () => {
    const s = new SqliteResponseStore(join(dir, 'ledger.db'))
    closers.push(() => s.close())
    await behaves(s)
  })

  it('PostgreSQL', { skip: !pgUp }, async () => {
    const s = PostgresResponseStore.connect('postgres://postgres@127.0.0.1:5432/test', pgPrefix)
    closers.push(() => s.close())
    await behaves(s)
  })
})

describe('the Responses service', () => {
  const make = (now: { t: number }, maxChainLength = 3) => {
    const config = responsesSection.parse({ retention: '1d', maxChainLength })
    const svc = new ResponsesService(new MemoryResponseStore(), () => config, () => now.t, pino({ level: 'silent' }))
    closers.push(() => svc.close())
    return svc
  }
  const saved = (svc: ResponsesService, r: StoredResponse) => { svc.save(r); return svc.find(r.id, r.consumerId) }

  it('a follow-up right after the answer finds the pending write; retention expires it', async () => {
    const now = { t: T0 }
    const svc = make(now)
    const id = svc.newId()
    svc.save(row(id, null))
    // No wait: the read is sent while the write is still pending.
    const c = await svc.continuation(id, 'c1')
    assert.equal(c.kind, 'gateway')
    assert.deepEqual(c.kind === 'gateway' && c.items.map((it) => it.id), [`msg_in_${id}`, `msg_out_${id}`])
    now.t = T0 + DAY + 1
    await assert.rejects(svc.continuation(id, 'c1'), (e: { code: string; param: string }) => e.code === 'previous_response_not_found' && e.param === 'previous_response_id')
  })

  it('a conversation longer than maxChainLength is refused; one at the bound continues', async () => {
    const now = { t: T0 }
    const svc = make(now, 3)
    const ids = [svc.newId(), svc.newId(), svc.newId(), svc.newId()]
    await saved(svc, row(ids[0]!, null))
    await saved(svc, row(ids[1]!, ids[0]!))
    await saved(svc, row(ids[2]!, ids[1]!))
    await saved(svc, row(ids[3]!, ids[2]!))
    const ok = await svc.continuation(ids[2]!, 'c1')
    assert.equal(ok.kind === 'gateway' && ok.chain.length, 3)
    await assert.rejects(svc.continuation(ids[3]!, 'c1'), /longer than 3 responses/)
  })
})
