import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'undici'
import { RequestIds } from '../src/core/request-id.ts'
import { authHeaders, startTestGateway, TEST_KEY, type TestGateway } from './helpers/gateway.ts'

// Gateway-made request ids are UUIDv7 (RFC 9562): time-ordered, so the ledger's request-id index grows at its
// end. The expected prefix comes from RFC 9562's own example (appendix A.6): unix time 0x017F22E279B0
// (1645557742000 ms) gives 017F22E2-79B0-7CC3-98C4-DC0C0C07398F; the rest of the id is random.
const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

test("RFC 9562's example time gives its example's time bits, the version 7 and the variant", () => {
  const ids = new RequestIds(() => 1645557742000)
  const id = ids.next()
  assert.match(id, V7)
  assert.equal(id.slice(0, 15), '017f22e2-79b0-7')
})

test('ids sort by the millisecond they were made in, and never repeat within one', () => {
  let now = 1645557742000
  const ids = new RequestIds(() => now)
  const sameMs = new Set<string>()
  for (let i = 0; i < 5000; i++) sameMs.add(ids.next())
  assert.equal(sameMs.size, 5000, 'unique within one millisecond')
  const seq: string[] = []
  for (let i = 0; i < 300; i++) { now += 1 + (i % 7) * 1000; seq.push(ids.next()) }
  assert.deepEqual([...seq].sort(), seq, 'later ids sort later')
  // The same instant always gives the same time bits: the prefix changes with the clock only.
  assert.equal(new RequestIds(() => now).next().slice(0, 15), seq.at(-1)!.slice(0, 15))
})

let tg: TestGateway
before(async () => {
  tg = await startTestGateway(`
listen: { host: 127.0.0.1, port: 0 }
backends: [ { id: m, type: mock } ]
models: [ { name: fast, target: m } ]
consumers: [ { id: team-a, keys: [ { value: ${TEST_KEY} } ] } ]
`)
})
after(async () => { await tg.close() })

test("a request without x-request-id gets a v7 id of its own time; a client's id is kept as sent", async () => {
  const body = JSON.stringify({ model: 'fast', messages: [{ role: 'user', content: 'hi' }] })
  const before = Date.now()
  const made = await request(`${tg.url}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body })
  await made.body.text()
  const after = Date.now()
  const id = String(made.headers['x-request-id'])
  assert.match(id, V7)
  const ms = parseInt(id.slice(0, 8) + id.slice(9, 13), 16)
  assert.ok(ms >= before && ms <= after, `the id's time ${ms} lies within the request (${before}…${after})`)
  const mine = await request(`${tg.url}/v1/chat/completions`, { method: 'POST', headers: { ...authHeaders(), 'x-request-id': 'req-abc-123' }, body })
  await mine.body.text()
  assert.equal(mine.headers['x-request-id'], 'req-abc-123')
})
