import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { ManualClock } from '../src/core/clock.ts'
import { startTestGateway, authHeaders, TEST_KEY, type TestGateway } from './helpers/gateway.ts'
import { reply, startSwitchable, type SwitchableUpstream } from './helpers/upstreams.ts'

const CONSUMERS = `
consumers:
  - id: team-a
    keys: [ { value: ${TEST_KEY} } ]
`

async function chat(url: string, headers: Record<string, string> = {}, model = 'gpt-4o') {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { ...authHeaders(), ...headers },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }),
  })
  const body = await res.text()
  return { status: res.status, backend: res.headers.get('x-sluice-backend'), attempts: Number(res.headers.get('x-sluice-attempts')), headers: res.headers, body }
}

async function spread(url: string, n: number, concurrency: number, headers: () => Record<string, string> = () => ({})): Promise<Map<string, number>> {
  const counts = new Map<string, number>()
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) {
      next++
      const r = await chat(url, headers())
      assert.equal(r.status, 200, r.body)
      counts.set(r.backend!, (counts.get(r.backend!) ?? 0) + 1)
    }
  }))
  return counts
}

describe('pools', () => {
  it('round-robin spreads evenly over the members', async () => {
    const t = await startTestGateway(`
backends:
  - { id: a, type: mock }
  - { id: b, type: mock }
  - { id: c, type: mock }
pools:
  - id: gpt-4o
    members: [ { backend: a }, { backend: b }, { backend: c } ]
models:
  - { name: gpt-4o, target: gpt-4o }
${CONSUMERS}`)
    try {
      const counts = await spread(t.url, 30, 1)
      assert.deepEqual([...counts.entries()].sort(), [['a', 10], ['b', 10], ['c', 10]])
    } finally {
      await t.close()
    }
  })

  it('weighted: splits traffic by weight within ±5% over a few thousand requests', async () => {
    const t = await startTestGateway(`
backends:
  - { id: w3, type: mock }
  - { id: w1, type: mock }
  - { id: w6, type: mock }
pools:
  - id: gpt-4o
    strategy: weighted
    members: [ { backend: w3, weight: 3 }, { backend: w1, weight: 1 }, { backend: w6, weight: 6 } ]
models:
  - { name: gpt-4o, target: gpt-4o }
${CONSUMERS}`)
    try {
      const n = 2000
      const counts = await spread(t.url, n, 16)
      for (const [id, share] of [['w3', 0.3], ['w1', 0.1], ['w6', 0.6]] as const) {
        const got = (counts.get(id) ?? 0) / n
        assert.ok(Math.abs(got - share) <= 0.05, `${id}: ${got} vs ${share}`)
      }
    } finally {
      await t.close()
    }
  })

  describe('priority', () => {
    let ptu: SwitchableUpstream
    let t: TestGateway
    const clock = new ManualClock()
    before(async () => {
      ptu = await startSwitchable()
      t = await startTestGateway(`
backends:
  - id: ptu
    type: openai-compatible
    url: ${ptu.url}
    circuitBreaker: { failures: 1, window: 10s, tripDuration: 30s, acceptRetryAfter: true }
  - { id: paygo-west, type: mock }
  - { id: paygo-north, type: mock }
pools:
  - id: gpt-4o
    strategy: priority
    members:
      - { backend: ptu, priority: 1 }
      - { backend: paygo-west, priority: 2, weight: 3 }
      - { backend: paygo-north, priority: 2, weight: 1 }
models:
  - { name: gpt-4o, target: gpt-4o }
${CONSUMERS}`, { clock })
    })
    after(async () => {
      await t.close()
      await ptu.close()
    })

    it('uses the first group only while it is healthy', async () => {
      const counts = await spread(t.url, 20, 4)
      assert.deepEqual([...counts.entries()], [['ptu', 20]])
    })

    it('spills over to the pay-as-you-go group when the PTU answers 429, and returns when its Retry-After passes', async () => {
      ptu.behave = reply(429, { 'retry-after': '7' })
      const first = await chat(t.url)
      assert.equal(first.status, 200, first.body)
      assert.notEqual(first.backend, 'ptu')
      assert.equal(first.attempts, 2, 'the PTU was tried first, then failed over')
      const hitsAfterTrip = ptu.hits
      // While the PTU's circuit is open, the second group takes everything, split by its weights (3:1).
      const counts = await spread(t.url, 40, 4)
      assert.equal(ptu.hits, hitsAfterTrip, 'no request went to the tripped PTU')
      assert.equal(counts.get('paygo-west'), 30)
      assert.equal(counts.get('paygo-north'), 10)
      ptu.behave = null // the PTU recovered, but the gateway has not looked yet
      clock.advance(6_999)
      assert.notEqual((await chat(t.url)).backend, 'ptu', 'Retry-After not yet passed')
      clock.advance(1)
      const back = await chat(t.url)
      assert.equal(back.backend, 'ptu', 'the half-open trial goes to the PTU and succeeds')
      assert.equal(back.attempts, 1)
      const after = await spread(t.url, 10, 2)
      assert.deepEqual([...after.entries()], [['ptu', 10]])
    })
  })

  describe('affinity', () => {
    it('keeps a session (header) on one member while it is healthy, and moves it when it is not', async () => {
      const clock = new ManualClock()
      const t = await startTestGateway(`
backends:
  - { id: s1, type: mock, circuitBreaker: { failures: 1, tripDuration: 60s } }
  - { id: s2, type: mock, circuitBreaker: { failures: 1, tripDuration: 60s } }
  - { id: s3, type: mock, circuitBreaker: { failures: 1, tripDuration: 60s } }
  - { id: s4, type: mock, circuitBreaker: { failures: 1, tripDuration: 60s } }
pools:
  - id: gpt-4o
    affinity: { header: x-session-id }
    members: [ { backend: s1 }, { backend: s2 }, { backend: s3 }, { backend: s4 } ]
models:
  - { name: gpt-4o, target: gpt-4o }
${CONSUMERS}`, { clock })
      try {
        const where = new Map<string, string>()
        for (let i = 0; i < 12; i++) {
          const session = `session-${i}`
          const seen = new Set<string>()
          for (let k = 0; k < 5; k++) seen.add((await chat(t.url, { 'x-session-id': session })).backend!)
          assert.equal(seen.size, 1, `${session} stayed on one member`)
          where.set(session, [...seen][0]!)
        }
        assert.ok(new Set(where.values()).size >= 2, 'sessions are spread over members')
        // Requests without a session still rotate.
        const free = new Set<string>()
        for (let k = 0; k < 4; k++) free.add((await chat(t.url)).backend!)
        assert.equal(free.size, 4)
        // Trip the member of session-0: the session moves, and stays on its new member.
        const home = where.get('session-0')!
        await t.gw.runtime().router.breakers.failed(home, (await import('../src/upstream/failure.ts')).failureFromError({ code: 'ECONNREFUSED' }, home))
        const moved = (await chat(t.url, { 'x-session-id': 'session-0' })).backend!
        assert.notEqual(moved, home)
        for (let k = 0; k < 3; k++) assert.equal((await chat(t.url, { 'x-session-id': 'session-0' })).backend, moved)
      } finally {
        await t.close()
      }
    })

    it('cookie affinity: hands out a session cookie and honours it', async () => {
      const t = await startTestGateway(`
backends:
  - { id: k1, type: mock }
  - { id: k2, type: mock }
  - { id: k3, type: mock }
pools:
  - id: gpt-4o
    strategy: weighted
    affinity: { cookie: SluiceSession }
    members: [ { backend: k1 }, { backend: k2 }, { backend: k3 } ]
models:
  - { name: gpt-4o, target: gpt-4o }
${CONSUMERS}`)
      try {
        const first = await chat(t.url)
        const cookie = first.headers.get('set-cookie')
        assert.match(cookie ?? '', /^SluiceSession=[A-Za-z0-9_-]+; Path=\//)
        const pair = cookie!.split(';')[0]!
        for (let k = 0; k < 6; k++) {
          const r = await chat(t.url, { cookie: `other=1; ${pair}` })
          assert.equal(r.backend, first.backend)
          assert.equal(r.headers.get('set-cookie'), null, 'a known session gets no new cookie')
        }
      } finally {
        await t.close()
      }
    })
  })
})
