import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { ManualClock } from '../src/core/clock.ts'
import { noopMetrics, type MetricsSink } from '../src/telemetry/sink.ts'
import { UpstreamFailure } from '../src/upstream/failure.ts'
import { GW_ERR } from '../src/core/errors.ts'
import { startTestGateway, authHeaders, TEST_KEY, type TestGateway } from './helpers/gateway.ts'
import { deadUrl, reply, startSwitchable, streamThenReset, until } from './helpers/upstreams.ts'

const CONSUMERS = `
consumers:
  - id: team-a
    keys: [ { value: ${TEST_KEY} } ]
`

async function chat(url: string, model = 'gpt-4o') {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: authHeaders(),
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }),
  })
  const text = await res.text()
  return { status: res.status, backend: res.headers.get('x-sluice-backend'), attempts: Number(res.headers.get('x-sluice-attempts')), headers: res.headers, json: JSON.parse(text) as Record<string, any> }
}

async function backends(t: TestGateway): Promise<Record<string, any>> {
  const res = await fetch(`${t.adminUrl}/admin/backends`)
  assert.equal(res.status, 200)
  const body = (await res.json()) as { backends: { id: string }[] }
  return Object.fromEntries(body.backends.map((b) => [b.id, b]))
}

async function streamChat(url: string, model: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body: JSON.stringify({ model, stream: true, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }) })
  return { status: res.status, text: await res.text() }
}

/** The cut stream reached the client (its content, then an error event) and counted once against `backend`. */
async function cutOnceCounted(t: TestGateway, backend: string, cut: { status: number; text: string }): Promise<void> {
  assert.equal(cut.status, 200, 'the answer had begun: the failure reaches the client as an error event')
  assert.match(cut.text, /"content":"Hel"/)
  assert.match(cut.text, /"error"/)
  await until(async () => (await backends(t))[backend].failures >= 1)
  assert.equal((await backends(t))[backend].failures, 1, 'counted once')
}

function recordingMetrics(): MetricsSink & { states: [string, number][] } {
  const states: [string, number][] = []
  return { ...noopMetrics, states, breakerState: (id, s) => { states.push([id, s]) } }
}

describe('circuit breaker', () => {
  it('trips after `failures` failures within the window, lets one trial through when half-open, closes on success', async () => {
    const clock = new ManualClock()
    const flaky = await startSwitchable()
    const metrics = recordingMetrics()
    const t = await startTestGateway(`
backends:
  - id: flaky
    type: openai-compatible
    url: ${flaky.url}
    circuitBreaker: { failures: 3, window: 10s, tripDuration: 30s }
  - { id: spare, type: mock }
pools:
  - id: gpt-4o
    strategy: priority
    members: [ { backend: flaky, priority: 1 }, { backend: spare, priority: 2 } ]
models:
  - { name: gpt-4o, target: gpt-4o }
${CONSUMERS}`, { clock, metrics })
    try {
      flaky.behave = reply(500)
      for (let i = 1; i <= 3; i++) {
        const r = await chat(t.url)
        assert.equal(r.status, 200)
        assert.equal(r.backend, 'spare')
        assert.equal(r.attempts, 2)
        clock.advance(1000)
      }
      let b = await backends(t)
      assert.equal(b.flaky.state, 'open')
      assert.equal(b.flaky.trips, 1)
      assert.equal(b.flaky.lastFailure.reason, 'status 500')
      assert.equal(b.flaky.openUntil, new Date(clock.now() - 1000 + 30_000).toISOString())
      assert.equal(b.spare.state, 'closed')
      assert.equal(b.spare.circuitBreaker, null)
      const hits = flaky.hits
      const skip = await chat(t.url)
      assert.equal(skip.backend, 'spare')
      assert.equal(skip.attempts, 1)
      assert.equal(flaky.hits, hits, 'an open circuit gets no traffic')

      clock.advance(29_000) // exactly 30 s after the trip
      b = await backends(t)
      assert.equal(b.flaky.state, 'half-open')
      assert.equal(b.flaky.available, true)
      const trial = await chat(t.url)
      assert.equal(trial.backend, 'spare', 'the failed trial fails over')
      assert.equal(trial.attempts, 2)
      assert.equal(flaky.hits, hits + 1, 'exactly one trial request')
      b = await backends(t)
      assert.equal(b.flaky.state, 'open', 'a failed trial trips the circuit again')
      assert.equal(b.flaky.trips, 2)

      flaky.behave = null
      clock.advance(30_000)
      const ok = await chat(t.url)
      assert.equal(ok.backend, 'flaky')
      assert.equal(ok.attempts, 1)
      b = await backends(t)
      assert.equal(b.flaky.state, 'closed')
      const flakyStates = metrics.states.filter(([id]) => id === 'flaky').map(([, s]) => s)
      assert.deepEqual(flakyStates.slice(-5), [2, 1, 2, 1, 0])
    } finally {
      await t.close()
      await flaky.close()
    }
  })

  it('a stream cut after its first content counts once against its backend; a stream that ends whole does not', async () => {
    const flaky = await startSwitchable()
    const t = await startTestGateway(`
backends:
  - { id: flaky, type: openai-compatible, url: "${flaky.url}", circuitBreaker: { failures: 5, window: 1m } }
models:
  - { name: gpt-4o, target: flaky }
${CONSUMERS}`)
    try {
      const whole = await streamChat(t.url, 'gpt-4o')
      assert.equal(whole.status, 200)
      assert.match(whole.text, /data: \[DONE\]/)
      assert.equal((await backends(t)).flaky.failures, 0, 'a whole stream is no failure')
      // A role chunk and one content chunk (the stream is committed), then the connection resets.
      flaky.behave = streamThenReset([
        'data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n',
        'data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}\n\n',
      ])
      await cutOnceCounted(t, 'flaky', await streamChat(t.url, 'gpt-4o'))
    } finally {
      await t.close()
      await flaky.close()
    }
  })

  it('a translated stream (Anthropic backend, OpenAI client) cut after its first content counts once against its backend', async () => {
    const flaky = await startSwitchable()
    const t = await startTestGateway(`
backends:
  - { id: claude, type: anthropic, url: "${flaky.url.replace(/\/v1$/, '')}", auth: { apiKey: sk-ant-breaker }, circuitBreaker: { failures: 5, window: 1m } }
models:
  - { name: claude-x, target: claude }
${CONSUMERS}`)
    // Anthropic's stream: message_start, a text block, one delta of content (the stream is committed), then a reset.
    const events = [
      ['message_start', { type: 'message_start', message: { id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-x', content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 5, output_tokens: 1 } } }],
      ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }],
      ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hel' } }],
    ] as const
    flaky.behave = streamThenReset(events.map(([name, data]) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`))
    try {
      assert.equal((await backends(t)).claude.failures, 0)
      await cutOnceCounted(t, 'claude', await streamChat(t.url, 'claude-x'))
    } finally {
      await t.close()
      await flaky.close()
    }
  })

  it('failures outside the window do not add up', async () => {
    const clock = new ManualClock()
    const flaky = await startSwitchable()
    const t = await startTestGateway(`
backends:
  - { id: flaky, type: openai-compatible, url: "${flaky.url}", circuitBreaker: { failures: 2, window: 5s } }
  - { id: spare, type: mock }
pools:
  - { id: gpt-4o, strategy: priority, members: [ { backend: flaky, priority: 1 }, { backend: spare, priority: 2 } ] }
models:
  - { name: gpt-4o, target: gpt-4o }
${CONSUMERS}`, { clock })
    try {
      flaky.behave = reply(503)
      await chat(t.url)
      clock.advance(5001)
      await chat(t.url)
      assert.equal((await backends(t)).flaky.state, 'closed')
      clock.advance(100)
      await chat(t.url)
      assert.equal((await backends(t)).flaky.state, 'open')
    } finally {
      await t.close()
      await flaky.close()
    }
  })

  it('honours Retry-After to the second (retry-after, retry-after-ms, x-ratelimit-reset-requests); a longer one extends, a shorter one never shortens', async () => {
    const clock = new ManualClock()
    const up = await startSwitchable()
    const t = await startTestGateway(`
backends:
  - { id: ra, type: openai-compatible, url: "${up.url}", circuitBreaker: { failures: 1, tripDuration: 10m, acceptRetryAfter: true } }
  - { id: spare, type: mock }
pools:
  - { id: gpt-4o, strategy: priority, members: [ { backend: ra, priority: 1 }, { backend: spare, priority: 2 } ] }
models:
  - { name: gpt-4o, target: gpt-4o }
${CONSUMERS}`, { clock })
    try {
      for (const [headers, waitMs] of [[{ 'retry-after': '7' }, 7000], [{ 'retry-after-ms': '2500' }, 2500], [{ 'x-ratelimit-reset-requests': '1m2s' }, 62_000]] as const) {
        up.behave = reply(429, headers)
        const tripAt = clock.now()
        assert.equal((await chat(t.url)).backend, 'spare')
        const b = await backends(t)
        assert.equal(b.ra.openUntil, new Date(tripAt + waitMs).toISOString(), JSON.stringify(headers))
        up.behave = null
        clock.advance(waitMs - 1)
        assert.equal((await chat(t.url)).backend, 'spare', 'one millisecond early: still open')
        clock.advance(1)
        assert.equal((await chat(t.url)).backend, 'ra', 'on the dot: the trial goes through')
        assert.equal((await backends(t)).ra.state, 'closed')
      }
      // Without a Retry-After the trip lasts tripDuration.
      up.behave = reply(500)
      const at = clock.now()
      await chat(t.url)
      assert.equal((await backends(t)).ra.openUntil, new Date(at + 600_000).toISOString())
      // A later, longer Retry-After (e.g. a request that was in flight) extends the trip; a shorter one does not shorten it.
      const breakers = t.gw.runtime().router.breakers
      const f = (ms: number) => new UpstreamFailure(GW_ERR.RATE_LIMIT_EXCEEDED, 'x', 'status', 'ra', 429, ms)
      clock.advance(1000)
      await breakers.failed('ra', f(900_000))
      assert.equal((await backends(t)).ra.openUntil, new Date(clock.now() + 900_000).toISOString())
      await breakers.failed('ra', f(1000))
      assert.equal((await backends(t)).ra.openUntil, new Date(clock.now() + 900_000).toISOString())
    } finally {
      await t.close()
      await up.close()
    }
  })

  it('uses tripDuration instead of Retry-After when acceptRetryAfter is false; statusCodes decide what counts', async () => {
    const clock = new ManualClock()
    const up = await startSwitchable()
    const t = await startTestGateway(`
backends:
  - { id: strict, type: openai-compatible, url: "${up.url}", circuitBreaker: { failures: 1, tripDuration: 45s, acceptRetryAfter: false, statusCodes: ["429"] } }
  - { id: spare, type: mock }
pools:
  - { id: gpt-4o, strategy: priority, members: [ { backend: strict, priority: 1 }, { backend: spare, priority: 2 } ] }
models:
  - { name: gpt-4o, target: gpt-4o }
${CONSUMERS}`, { clock })
    try {
      up.behave = reply(502)
      assert.equal((await chat(t.url)).backend, 'spare', '502 fails over')
      assert.equal((await backends(t)).strict.state, 'closed', 'but 502 is not in statusCodes')
      up.behave = reply(429, { 'retry-after': '3' })
      await chat(t.url)
      assert.equal((await backends(t)).strict.openUntil, new Date(clock.now() + 45_000).toISOString())
    } finally {
      await t.close()
      await up.close()
    }
  })

  it('trips on connection errors (errorKinds) and keeps its state across a config reload', async () => {
    const clock = new ManualClock()
    const yaml = `
backends:
  - { id: gone, type: openai-compatible, url: "${await deadUrl()}", circuitBreaker: { failures: 1, tripDuration: 1m, errorKinds: [connect] } }
  - { id: spare, type: mock }
pools:
  - { id: gpt-4o, members: [ { backend: gone }, { backend: spare } ] }
models:
  - { name: gpt-4o, target: gpt-4o }
${CONSUMERS}`
    const t = await startTestGateway(yaml, { clock })
    try {
      const r = await chat(t.url)
      assert.equal(r.status, 200)
      assert.equal(r.backend, 'spare')
      assert.equal((await backends(t)).gone.lastFailure.reason, 'connect')
      const { loadConfigText } = await import('../src/config/load.ts')
      const { builtinPolicies } = await import('../src/policies/registry.ts')
      const res = loadConfigText(`listen: { host: 127.0.0.1, port: 0 }\nadmin: { host: 127.0.0.1, port: 0 }\nledger: { type: none }\n${yaml}`, { registry: builtinPolicies() })
      assert.ok(res.ok)
      await t.gw.reload(res.config)
      assert.equal((await backends(t)).gone.state, 'open', 'the new snapshot sees the trip')
      for (let i = 0; i < 4; i++) assert.equal((await chat(t.url)).attempts, 1)
    } finally {
      await t.close()
    }
  })

  it('all members tripped: 503 no_healthy_backend with retry-after = the earliest comeback', async () => {
    const clock = new ManualClock()
    const a = await startSwitchable()
    const b = await startSwitchable()
    const t = await startTestGateway(`
backends:
  - { id: a, type: openai-compatible, url: "${a.url}", circuitBreaker: { failures: 1 } }
  - { id: b, type: openai-compatible, url: "${b.url}", circuitBreaker: { failures: 1 } }
pools:
  - { id: gpt-4o, members: [ { backend: a }, { backend: b } ] }
models:
  - { name: gpt-4o, target: gpt-4o }
${CONSUMERS}`, { clock })
    try {
      a.behave = reply(429, { 'retry-after': '8' })
      b.behave = reply(429, { 'retry-after': '3' })
      const first = await chat(t.url)
      assert.equal(first.status, 503)
      assert.equal(first.json.error.code, 'no_healthy_backend')
      assert.equal(first.json.error.type, 'service_unavailable')
      assert.equal(first.headers.get('retry-after'), '3')
      assert.equal(first.attempts, 2)
      const hits = a.hits + b.hits
      clock.advance(1500)
      const second = await chat(t.url)
      assert.equal(second.status, 503)
      assert.equal(second.headers.get('retry-after'), '2')
      assert.equal(second.headers.get('retry-after-ms'), '1500')
      assert.equal(a.hits + b.hits, hits, 'nothing was sent upstream')
      a.behave = b.behave = null
      clock.advance(1500)
      const back = await chat(t.url)
      assert.equal(back.status, 200)
      assert.equal(back.backend, 'b')
    } finally {
      await t.close()
      await a.close()
      await b.close()
    }
  })

  it('without a circuit breaker a failing backend is failed over but never tripped; the last failure is answered when all fail', async () => {
    const up = await startSwitchable()
    const t = await startTestGateway(`
backends:
  - { id: solo, type: openai-compatible, url: "${up.url}" }
models:
  - { name: gpt-4o, target: solo }
${CONSUMERS}`)
    try {
      up.behave = reply(429, { 'retry-after': '4' })
      const r = await chat(t.url)
      assert.equal(r.status, 429)
      assert.equal(r.json.error.code, 'rate_limit_exceeded')
      assert.equal(r.headers.get('retry-after'), '4')
      assert.equal((await backends(t)).solo.state, 'closed')
    } finally {
      await t.close()
      await up.close()
    }
  })
})
