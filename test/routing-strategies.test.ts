import { test } from 'node:test'
import assert from 'node:assert/strict'
import type http from 'node:http'
import { startSwitchable, reply, type SwitchableUpstream } from './helpers/upstreams.ts'
import { startTestGateway, serviceAvailable, TEST_KEY, authHeaders, type TestGateway } from './helpers/gateway.ts'

async function ask(tg: TestGateway, model: string): Promise<string> {
  const res = await fetch(`${tg.url}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }) })
  assert.equal(res.status, 200, await res.clone().text())
  await res.text()
  return res.headers.get('x-sluice-backend')!
}

function poolYaml(strategy: string, a: SwitchableUpstream, b: SwitchableUpstream, extra = '', store = ''): string {
  return `
${store}
backends:
  - { id: a, type: openai-compatible, url: "${a.url}" }
  - { id: b, type: openai-compatible, url: "${b.url}" }
pools: [ { id: p, strategy: ${strategy}, ${extra} members: [ { backend: a }, { backend: b } ] } ]
models: [ { name: m, target: p } ]
consumers: [ { id: team-a, keys: [ { value: ${TEST_KEY} } ] } ]
`
}

/** Makes the mock behind `up` answer after `ms` (the regular mock, slowed by its own latency header). */
function slow(up: SwitchableUpstream, ms: number): void {
  up.behave = (req: http.IncomingMessage) => {
    req.headers['x-mock-latency-ms'] = String(ms)
    return false
  }
}

test('least-latency moves traffic away from a member that slows down, and back when it recovers', async () => {
  const a = await startSwitchable()
  const b = await startSwitchable()
  const tg = await startTestGateway(poolYaml('least-latency', a, b, 'explore: 0.2,'))
  try {
    slow(a, 150)
    const phase1: string[] = []
    for (let i = 0; i < 60; i++) phase1.push(await ask(tg, 'm'))
    // After the first look at each member, a (150 ms slower) is only explored: 20 % of picks (11 of 55
    // expected). 55 picks keep the chance of no exploration at all, 0.8^55, near 5 in a million (25 picks
    // left it at 4 in a thousand, and CI met it); more than 24 is as unlikely.
    const toA = phase1.slice(5).filter((x) => x === 'a').length
    assert.ok(toA >= 1 && toA <= 24, `slow member got ${toA} of 55`)
    a.behave = null // recovered
    const phase2: string[] = []
    for (let i = 0; i < 80; i++) phase2.push(await ask(tg, 'm'))
    // One explored sample of the recovered member is enough (several times faster than its average, it starts
    // afresh) and the two share again; the 55 picks before the last 25 all but certainly hold one.
    const back = phase2.slice(55).filter((x) => x === 'a').length
    assert.ok(back >= 6, `recovered member got ${back} of the last 25`)
    assert.ok(back <= 22, `recovered member got ${back} of the last 25`)
  } finally {
    await tg.close()
    await a.close()
    await b.close()
  }
})

/** Holds every request until `release` is called. */
function hold(up: SwitchableUpstream): () => void {
  const held: (() => void)[] = []
  up.behave = (req, res) => {
    held.push(() => reply(200)(req, res))
    return true
  }
  return () => {
    up.behave = null
    for (const h of held) h()
  }
}

test('least-busy sends new requests to the member with fewer in flight', async () => {
  const a = await startSwitchable()
  const b = await startSwitchable()
  const tg = await startTestGateway(poolYaml('least-busy', a, b))
  try {
    const release = hold(a)
    // Both idle: the tie goes by weight, a first (listed first).
    const stuck = fetch(`${tg.url}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x' }] }) })
    while (a.hits === 0) await new Promise((r) => setImmediate(r))
    const picks: string[] = []
    for (let i = 0; i < 5; i++) picks.push(await ask(tg, 'm'))
    assert.deepEqual(picks, ['b', 'b', 'b', 'b', 'b'])
    release()
    await (await stuck).text()
    const after: string[] = []
    for (let i = 0; i < 6; i++) after.push(await ask(tg, 'm'))
    // Idle again: the two alternate (smooth weighted split of the tie).
    assert.equal(after.filter((x) => x === 'a').length, 3)
  } finally {
    await tg.close()
    await a.close()
    await b.close()
  }
})

test('least-busy counts are shared through Redis: a second gateway sees the first one\'s request in flight', async (t) => {
  if (!(await serviceAvailable('redis'))) return t.skip('no Redis')
  const a = await startSwitchable()
  const b = await startSwitchable()
  const store = `store: { type: redis, url: "redis://127.0.0.1:6379", keyPrefix: "test-busy-${process.pid}-${Date.now()}:" }`
  const g1 = await startTestGateway(poolYaml('least-busy', a, b, '', store))
  const g2 = await startTestGateway(poolYaml('least-busy', a, b, '', store))
  try {
    const release = hold(a)
    const stuck = fetch(`${g1.url}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x' }] }) })
    while (a.hits === 0) await new Promise((r) => setImmediate(r))
    // g1 wrote the start to Redis before it sent the request that a has now received.
    const picks: string[] = []
    for (let i = 0; i < 4; i++) picks.push(await ask(g2, 'm'))
    assert.deepEqual(picks, ['b', 'b', 'b', 'b'])
    release()
    await (await stuck).text()
  } finally {
    await g1.close()
    await g2.close()
    await a.close()
    await b.close()
  }
})

test('least-cost sends each request to the cheapest priced member, and fails over to the dearer one', async () => {
  const cheap = await startSwitchable()
  const dear = await startSwitchable()
  const unpriced = await startSwitchable()
  const tg = await startTestGateway(`
backends:
  - { id: dear, type: openai-compatible, url: "${dear.url}", models: { m: gpt-4o } }
  - { id: unpriced, type: openai-compatible, url: "${unpriced.url}", models: { m: some-private-model } }
  - { id: cheap, type: openai-compatible, url: "${cheap.url}", models: { m: gpt-4o-mini } }
pools: [ { id: p, strategy: least-cost, members: [ { backend: dear }, { backend: unpriced }, { backend: cheap } ] } ]
models: [ { name: m, target: p } ]
consumers: [ { id: team-a, keys: [ { value: ${TEST_KEY} } ] } ]
`)
  try {
    const picks: string[] = []
    for (let i = 0; i < 4; i++) picks.push(await ask(tg, 'm'))
    // gpt-4o-mini ($0.15/$0.60 per 1M) is cheaper than gpt-4o ($2.50/$10); an unpriced model is never first.
    assert.deepEqual(picks, ['cheap', 'cheap', 'cheap', 'cheap'])
    cheap.behave = reply(500)
    assert.equal(await ask(tg, 'm'), 'dear')
    assert.equal(unpriced.hits, 0)
  } finally {
    await tg.close()
    await cheap.close()
    await dear.close()
    await unpriced.close()
  }
})
