import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { startTestGateway, authHeaders, TEST_KEY } from './helpers/gateway.ts'
import { deadUrl, reply, resetBeforeContent, resetBeforeHeaders, startSwitchable } from './helpers/upstreams.ts'

const CONSUMERS = `
consumers:
  - id: team-a
    keys: [ { value: ${TEST_KEY} } ]
`

async function post(url: string, body: Record<string, unknown>) {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: authHeaders(),
    body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello there' }], max_tokens: 8, ...body }),
  })
  const text = await res.text()
  return { status: res.status, backend: res.headers.get('x-sluice-backend'), attempts: Number(res.headers.get('x-sluice-attempts')), headers: res.headers, text }
}

/** Parses an SSE body into its data payloads. */
function events(text: string): string[] {
  return text.split('\n\n').map((b) => b.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n')).filter((d) => d !== '')
}

describe('failover', () => {
  it('retries 5xx, 429 and connection errors on the next member; never the same one twice', async () => {
    const a = await startSwitchable()
    const b = await startSwitchable()
    const t = await startTestGateway(`
backends:
  - { id: a, type: openai-compatible, url: "${a.url}" }
  - { id: b, type: openai-compatible, url: "${b.url}" }
  - { id: gone, type: openai-compatible, url: "${await deadUrl()}" }
  - { id: good, type: mock }
pools:
  - id: gpt-4o
    strategy: priority
    members: [ { backend: a, priority: 1 }, { backend: b, priority: 2 }, { backend: gone, priority: 3 }, { backend: good, priority: 4 } ]
models:
  - { name: gpt-4o, target: gpt-4o, maxAttempts: 4 }
${CONSUMERS}`)
    try {
      a.behave = reply(500)
      b.behave = reply(429, { 'retry-after': '1' })
      const r = await post(t.url, {})
      assert.equal(r.status, 200, r.text)
      assert.equal(r.backend, 'good')
      assert.equal(r.attempts, 4)
      assert.equal(a.hits, 1)
      assert.equal(b.hits, 1)
    } finally {
      await t.close()
      await a.close()
      await b.close()
    }
  })

  it('returns non-retriable errors (400) as they are, without trying elsewhere', async () => {
    const a = await startSwitchable()
    const t = await startTestGateway(`
backends:
  - { id: a, type: openai-compatible, url: "${a.url}" }
  - { id: good, type: mock }
pools:
  - { id: gpt-4o, strategy: priority, members: [ { backend: a, priority: 1 }, { backend: good, priority: 2 } ] }
models:
  - { name: gpt-4o, target: gpt-4o }
${CONSUMERS}`)
    try {
      a.behave = reply(400)
      const r = await post(t.url, {})
      assert.equal(r.status, 400)
      assert.equal(JSON.parse(r.text).error.message, 'injected 400')
      assert.equal(r.attempts, 1)
      assert.equal(t.gw.mocks.server('good')!.stats.requests, 0)
    } finally {
      await t.close()
      await a.close()
    }
  })

  it('stops at maxAttempts and answers the last failure', async () => {
    const t = await startTestGateway(`
backends:
  - { id: f1, type: mock, failRate: 1, failStatus: 500 }
  - { id: f2, type: mock, failRate: 1, failStatus: 500 }
  - { id: f3, type: mock, failRate: 1, failStatus: 500 }
  - { id: f4, type: mock }
pools:
  - { id: gpt-4o, strategy: priority, members: [ { backend: f1, priority: 1 }, { backend: f2, priority: 2 }, { backend: f3, priority: 3 }, { backend: f4, priority: 4 } ] }
models:
  - { name: gpt-4o, target: gpt-4o, maxAttempts: 2 }
${CONSUMERS}`)
    try {
      const r = await post(t.url, {})
      assert.equal(r.status, 502)
      assert.equal(JSON.parse(r.text).error.code, 'bad_gateway')
      assert.equal(r.attempts, 2)
      assert.equal(t.gw.mocks.server('f3')!.stats.requests, 0)
    } finally {
      await t.close()
    }
  })

  it('follows the fallbacks chain to another model when the target has nothing left', async () => {
    const t = await startTestGateway(`
backends:
  - { id: p1, type: mock, failRate: 1, failStatus: 503 }
  - { id: p2, type: mock, failRate: 1, failStatus: 500 }
  - { id: small, type: mock }
pools:
  - { id: big, members: [ { backend: p1 }, { backend: p2 } ] }
models:
  - { name: gpt-4o, target: big, fallbacks: [gpt-4o-mini] }
  - { name: gpt-4o-mini, target: small }
${CONSUMERS}`)
    try {
      const r = await post(t.url, {})
      assert.equal(r.status, 200, r.text)
      assert.equal(r.backend, 'small')
      assert.equal(r.attempts, 3)
      assert.equal(JSON.parse(r.text).model.startsWith('gpt-4o-mini'), true, 'the fallback model answered')
    } finally {
      await t.close()
    }
  })

  it('fails over on a timeout before the first byte', async () => {
    const t = await startTestGateway(`
backends:
  - { id: slow, type: mock, timeout: 200ms, headers: { x-mock-hang: "1" } }
  - { id: good, type: mock }
pools:
  - { id: gpt-4o, strategy: priority, members: [ { backend: slow, priority: 1 }, { backend: good, priority: 2 } ] }
models:
  - { name: gpt-4o, target: gpt-4o }
${CONSUMERS}`)
    try {
      const r = await post(t.url, {})
      assert.equal(r.status, 200)
      assert.equal(r.backend, 'good')
      assert.equal(r.attempts, 2)
    } finally {
      await t.close()
    }
  })

  it('answers 504 when the model deadline passes', async () => {
    const t = await startTestGateway(`
backends:
  - { id: stuck, type: mock, headers: { x-mock-hang: "1" } }
models:
  - { name: gpt-4o, target: stuck, deadline: 300ms }
${CONSUMERS}`)
    try {
      const r = await post(t.url, {})
      assert.equal(r.status, 504)
      assert.equal(JSON.parse(r.text).error.code, 'gateway_timeout')
      const stats = t.gw.mocks.server('stuck')!.stats
      for (let i = 0; i < 100 && stats.aborted === 0; i++) await new Promise((res) => setTimeout(res, 20))
      assert.equal(stats.aborted, 1, 'the upstream request was cancelled')
    } finally {
      await t.close()
    }
  })

  describe('streams', () => {
    it('a stream whose first backend fails before the first chunk succeeds on the second, as one clean stream', async () => {
      for (const failure of [resetBeforeHeaders, resetBeforeContent, reply(500)]) {
        const a = await startSwitchable()
        a.behave = failure
        const t = await startTestGateway(`
backends:
  - { id: a, type: openai-compatible, url: "${a.url}" }
  - { id: b, type: mock }
pools:
  - { id: gpt-4o, strategy: priority, members: [ { backend: a, priority: 1 }, { backend: b, priority: 2 } ] }
models:
  - { name: gpt-4o, target: gpt-4o }
${CONSUMERS}`)
        try {
          const r = await post(t.url, { stream: true })
          assert.equal(r.status, 200)
          assert.equal(r.backend, 'b')
          assert.equal(r.attempts, 2)
          const data = events(r.text)
          assert.equal(data.at(-1), '[DONE]')
          const chunks = data.slice(0, -1).map((d) => JSON.parse(d) as { id: string; choices: { delta: { role?: string; content?: string } }[]; error?: unknown })
          assert.ok(chunks.every((c) => !c.error), 'no error event')
          assert.equal(new Set(chunks.map((c) => c.id)).size, 1, 'every chunk comes from one upstream stream')
          assert.equal(chunks.filter((c) => c.choices[0]?.delta.role).length, 1, 'one role chunk: nothing of the failed attempt leaked')
          assert.ok(chunks.some((c) => c.choices[0]?.delta.content), 'content arrived')
        } finally {
          await t.close()
          await a.close()
        }
      }
    })

    it('a stream that goes silent before its first content fails over, or answers 504 when nothing is left', async () => {
      const t = await startTestGateway(`
backends:
  - { id: idle, type: mock, idleTimeout: 200ms, ttft: 20s }
  - { id: b, type: mock }
pools:
  - { id: gpt-4o, strategy: priority, members: [ { backend: idle, priority: 1 }, { backend: b, priority: 2 } ] }
models:
  - { name: gpt-4o, target: gpt-4o }
  - { name: gpt-4o-mini, target: idle }
${CONSUMERS}`)
      try {
        const r = await post(t.url, { stream: true })
        assert.equal(r.status, 200)
        assert.equal(r.backend, 'b')
        assert.equal(r.attempts, 2)
        const alone = await post(t.url, { stream: true, model: 'gpt-4o-mini' })
        assert.equal(alone.status, 504)
        assert.equal(JSON.parse(alone.text).error.code, 'gateway_timeout')
      } finally {
        await t.close()
      }
    })

    it('an error event before any content fails over too', async () => {
      const a = await startSwitchable()
      a.behave = (req, res) => {
        req.resume()
        req.on('end', () => {
          res.writeHead(200, { 'content-type': 'text/event-stream' })
          res.end('data: {"error":{"message":"overloaded","type":"server_error"}}\n\n')
        })
        return true
      }
      const t = await startTestGateway(`
backends:
  - { id: a, type: openai-compatible, url: "${a.url}" }
  - { id: b, type: mock }
pools:
  - { id: gpt-4o, strategy: priority, members: [ { backend: a, priority: 1 }, { backend: b, priority: 2 } ] }
models:
  - { name: gpt-4o, target: gpt-4o }
${CONSUMERS}`)
      try {
        const r = await post(t.url, { stream: true })
        assert.equal(r.backend, 'b')
        assert.ok(!r.text.includes('overloaded'))
      } finally {
        await t.close()
        await a.close()
      }
    })

    it('after the first content, a failure ends the stream with an explicit SSE error event', async () => {
      const t = await startTestGateway(`
backends:
  - { id: cut, type: mock, headers: { x-mock-reset-after-tokens: "3" } }
  - { id: b, type: mock }
pools:
  - { id: gpt-4o, strategy: priority, members: [ { backend: cut, priority: 1 }, { backend: b, priority: 2 } ] }
models:
  - { name: gpt-4o, target: gpt-4o }
${CONSUMERS}`)
      try {
        const r = await post(t.url, { stream: true, max_tokens: 20 })
        assert.equal(r.status, 200)
        assert.equal(r.backend, 'cut')
        const data = events(r.text)
        assert.equal(data.at(-1), '[DONE]')
        const last = JSON.parse(data.at(-2)!) as { error?: { code: string } }
        assert.ok(last.error, 'an error event before [DONE]')
        assert.equal(t.gw.mocks.server('b')!.stats.requests, 0, 'no failover after content reached the client')
      } finally {
        await t.close()
      }
    })
  })

  it('the official openai SDK sees one successful response while the first backend is failing', async () => {
    const t = await startTestGateway(`
backends:
  - { id: down, type: mock, failRate: 1, failStatus: 429, retryAfter: 2s, circuitBreaker: { failures: 1 } }
  - { id: up, type: mock }
pools:
  - { id: gpt-4o, strategy: priority, members: [ { backend: down, priority: 1 }, { backend: up, priority: 2 } ] }
models:
  - { name: gpt-4o, target: gpt-4o }
${CONSUMERS}`)
    try {
      const client = new OpenAI({ apiKey: TEST_KEY, baseURL: `${t.url}/v1`, maxRetries: 0 })
      const { data, response } = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello' }], max_tokens: 5 }).withResponse()
      assert.equal(data.object, 'chat.completion')
      assert.ok(data.choices[0]!.message.content)
      assert.equal(response.headers.get('x-sluice-backend'), 'up')
      assert.equal(response.headers.get('x-sluice-attempts'), '2')
      assert.equal(t.gw.mocks.server('down')!.stats.requests, 1)
      const stream = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello' }], max_tokens: 5, stream: true })
      let text = ''
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? ''
      assert.ok(text.length > 0)
      assert.equal(t.gw.mocks.server('down')!.stats.requests, 1, 'the tripped backend was skipped')
    } finally {
      await t.close()
    }
  })
})
