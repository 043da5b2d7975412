import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { loadConfigText } from '../src/config/load.ts'
import { builtinPolicies } from '../src/policies/registry.ts'
import { OVERFLOW, SeriesTable } from '../src/telemetry/series.ts'
import { Telemetry } from '../src/telemetry/telemetry.ts'
import { startTestGateway, type TestGateway } from './helpers/gateway.ts'
import { parseProm, samplesOf, scrapeUntil, sumOf, type PromSample } from './helpers/prom.ts'

const KEY_A = 'sk-metrics-team-a'
const KEY_B = 'sk-metrics-team-b'

const YAML = `
backends:
  - { id: mock-a, type: mock }
  - { id: mock-b, type: mock }
models:
  - { name: gpt-4o-mini, target: mock-a }
  - { name: gpt-4o, target: mock-b }
products:
  - id: standard
    models: [gpt-4o-mini, gpt-4o]
consumers:
  - { id: team-a, product: standard, keys: [ { value: ${KEY_A} } ] }
  - { id: team-b, product: standard, keys: [ { value: ${KEY_B} } ] }
policies:
  - emit-token-metric: { dimensions: { consumer: consumer.id, model: request.model, user: 'request.headers["x-user-id"]' } }
`

interface Sent {
  consumer: string
  model: string
  backend: string
  user: string
  stream: boolean
  prompt: number
  completion: number
}

/** Sends one chat completion and returns the usage the mock reported (streams ask for the usage chunk). */
async function chat(url: string, key: string, model: string, stream: boolean, completionTokens: number, user: string): Promise<{ prompt: number; completion: number }> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'x-user-id': user },
    body: JSON.stringify({ model, stream, max_tokens: completionTokens, ...(stream ? { stream_options: { include_usage: true } } : {}), messages: [{ role: 'user', content: `Hello from ${user} about ${model}` }] }),
  })
  assert.equal(res.status, 200)
  if (!stream) {
    const body = (await res.json()) as { usage: { prompt_tokens: number; completion_tokens: number } }
    return { prompt: body.usage.prompt_tokens, completion: body.usage.completion_tokens }
  }
  const text = await res.text()
  let usage: { prompt_tokens: number; completion_tokens: number } | null = null
  for (const line of text.split('\n')) {
    if (!line.startsWith('data: {')) continue
    const json = JSON.parse(line.slice(6)) as { usage?: { prompt_tokens: number; completion_tokens: number } | null }
    if (json.usage) usage = json.usage
  }
  assert.ok(usage, 'the stream carried its usage chunk')
  return { prompt: usage.prompt_tokens, completion: usage.completion_tokens }
}

describe('Prometheus metrics at /metrics', () => {
  let g: TestGateway
  const sent: Sent[] = []
  let samples: PromSample[]

  before(async () => {
    g = await startTestGateway(YAML)
    const plan: Array<[string, string, string, boolean, number, string]> = [
      ['team-a', KEY_A, 'gpt-4o-mini', false, 7, 'alice'],
      ['team-a', KEY_A, 'gpt-4o-mini', true, 11, 'alice'],
      ['team-a', KEY_A, 'gpt-4o', false, 5, 'bob'],
      ['team-b', KEY_B, 'gpt-4o', true, 9, 'carol'],
      ['team-b', KEY_B, 'gpt-4o', true, 13, 'carol'],
      ['team-b', KEY_B, 'gpt-4o-mini', false, 3, 'dave'],
    ]
    for (const [consumer, key, model, stream, n, user] of plan) {
      const u = await chat(g.url, key, model, stream, n, user)
      assert.equal(u.completion, n)
      sent.push({ consumer, model, backend: model === 'gpt-4o' ? 'mock-b' : 'mock-a', user, stream, ...u })
    }
    // Refused requests are counted too, but never as series of their own: an unknown key (no consumer) and an
    // unknown model each add to one fixed counter, so callers without a key cannot fill the series cap.
    const bad = await fetch(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: 'Bearer sk-nobody-at-all', 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }) })
    assert.equal(bad.status, 401)
    const unknown = await fetch(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${KEY_A}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'no-such-model-9f2', messages: [{ role: 'user', content: 'x' }] }) })
    assert.equal(unknown.status, 404)
    samples = await scrapeUntil(g.adminUrl, (s) => sumOf(s, 'sluice_requests_total') >= plan.length && sumOf(s, 'sluice_unattributed_requests_total') >= 2)
  })
  after(() => g.close())

  it('counts tokens by type, consumer, product, model and backend, equal to the mock\'s usage', () => {
    for (const consumer of ['team-a', 'team-b']) {
      for (const model of ['gpt-4o-mini', 'gpt-4o']) {
        const mine = sent.filter((s) => s.consumer === consumer && s.model === model)
        const labels = { consumer, product: 'standard', model, backend: model === 'gpt-4o' ? 'mock-b' : 'mock-a' }
        assert.equal(sumOf(samples, 'sluice_tokens_total', { ...labels, type: 'prompt' }), mine.reduce((a, s) => a + s.prompt, 0), `prompt ${consumer} ${model}`)
        assert.equal(sumOf(samples, 'sluice_tokens_total', { ...labels, type: 'completion' }), mine.reduce((a, s) => a + s.completion, 0), `completion ${consumer} ${model}`)
        assert.equal(sumOf(samples, 'sluice_tokens_total', { ...labels, type: 'cached' }), 0)
        assert.equal(sumOf(samples, 'sluice_tokens_total', { ...labels, type: 'reasoning' }), 0)
      }
    }
    const all = sent.reduce((a, s) => a + s.prompt + s.completion, 0)
    assert.equal(sumOf(samples, 'sluice_tokens_total', { type: 'prompt' }) + sumOf(samples, 'sluice_tokens_total', { type: 'completion' }), all)
  })

  it('counts requests by status, consumer, model and backend', () => {
    assert.equal(sumOf(samples, 'sluice_requests_total', { status: '200', consumer: 'team-a', model: 'gpt-4o-mini', backend: 'mock-a' }), 2)
    assert.equal(sumOf(samples, 'sluice_requests_total', { status: '200', consumer: 'team-a', model: 'gpt-4o', backend: 'mock-b' }), 1)
    assert.equal(sumOf(samples, 'sluice_requests_total', { status: '200', consumer: 'team-b', model: 'gpt-4o', backend: 'mock-b' }), 2)
    assert.equal(sumOf(samples, 'sluice_requests_total', { status: '200', consumer: 'team-b', model: 'gpt-4o-mini', backend: 'mock-a' }), 1)
    // No principal, or a model nobody configured: no series (the client's free text is never a label value).
    assert.equal(sumOf(samples, 'sluice_requests_total', { status: '401' }), 0)
    assert.equal(sumOf(samples, 'sluice_requests_total', { status: '404' }), 0)
    assert.equal(samplesOf(samples, 'sluice_requests_total').some((s) => s.labels.model === 'no-such-model-9f2' || s.labels.model === '__unknown__'), false)
    assert.equal(sumOf(samples, 'sluice_unattributed_requests_total', { reason: 'unauthenticated' }), 1)
    assert.equal(sumOf(samples, 'sluice_unattributed_requests_total', { reason: 'unknown_model' }), 1)
    assert.equal(sumOf(samples, 'sluice_requests_total'), sent.length)
  })

  it('has latency histograms, and time to first token for streams only', () => {
    assert.equal(sumOf(samples, 'sluice_request_duration_seconds_count'), sent.length)
    assert.equal(sumOf(samples, 'sluice_request_duration_seconds_count', { consumer: 'team-b', model: 'gpt-4o' }), 2)
    const inf = samplesOf(samples, 'sluice_request_duration_seconds_bucket', { le: '+Inf' })
    assert.equal(inf.reduce((a, s) => a + s.value, 0), sent.length)
    assert.equal(sumOf(samples, 'sluice_time_to_first_token_seconds_count'), sent.filter((s) => s.stream).length)
    assert.equal(sumOf(samples, 'sluice_time_to_first_token_seconds_count', { consumer: 'team-b', model: 'gpt-4o', backend: 'mock-b' }), 2)
    assert.ok(sumOf(samples, 'sluice_time_to_first_token_seconds_sum') > 0)
  })

  it('publishes a closed circuit for every configured backend', () => {
    assert.deepEqual(samplesOf(samples, 'sluice_backend_circuit_state').map((s) => [s.labels.backend, s.value]).sort(), [['mock-a', 0], ['mock-b', 0]])
  })

  it('records emit-token-metric with built-in and configured dimensions', () => {
    for (const user of ['alice', 'bob', 'carol', 'dave']) {
      const mine = sent.filter((s) => s.user === user)
      const prompt = mine.reduce((a, s) => a + s.prompt, 0)
      const completion = mine.reduce((a, s) => a + s.completion, 0)
      assert.equal(sumOf(samples, 'sluice_policy_tokens_total', { user, type: 'prompt' }), prompt, `prompt ${user}`)
      assert.equal(sumOf(samples, 'sluice_policy_tokens_total', { user, type: 'completion' }), completion, `completion ${user}`)
      assert.equal(sumOf(samples, 'sluice_policy_tokens_total', { user, type: 'total' }), prompt + completion, `total ${user}`)
    }
    const carol = samplesOf(samples, 'sluice_policy_tokens_total', { user: 'carol', type: 'total' })
    assert.equal(carol.length, 1)
    assert.deepEqual(carol[0]!.labels, { type: 'total', consumer: 'team-b', product: 'standard', model: 'gpt-4o', backend: 'mock-b', user: 'carol' })
    // Cached and reasoning series appear only once a backend reports such tokens (the mock reports none).
    assert.equal(samplesOf(samples, 'sluice_policy_tokens_total', { type: 'cached' }).length, 0)
    // Requests refused before any answer have no usage, so no policy series.
    assert.equal(samplesOf(samples, 'sluice_policy_tokens_total', { consumer: '' }).length, 0)
  })

  it('serves the summary the dashboard reads', async () => {
    const res = await fetch(`${g.adminUrl}/admin/metrics/summary?window=10m`)
    assert.equal(res.status, 200)
    const body = (await res.json()) as { buckets: Array<{ requests: number; totalTokens: number; byConsumer: Record<string, number> }>; totals: { byConsumer: Array<{ key: string; totalTokens: number }> }; circuit: Record<string, number> }
    assert.equal(body.buckets.length, 10)
    assert.equal(body.buckets.reduce((a, b) => a + b.requests, 0), sent.length)
    const teamA = sent.filter((s) => s.consumer === 'team-a').reduce((a, s) => a + s.prompt + s.completion, 0)
    assert.equal(body.buckets.reduce((a, b) => a + (b.byConsumer['team-a'] ?? 0), 0), teamA)
    assert.equal(body.totals.byConsumer.find((r) => r.key === 'team-a')?.totalTokens, teamA)
    assert.deepEqual(body.circuit, { 'mock-a': 0, 'mock-b': 0 })
    const bad = await fetch(`${g.adminUrl}/admin/metrics/summary?window=soon`)
    assert.equal(bad.status, 400)
  })

})

describe('sink events', () => {
  it('reports breaker states, cache lookups, store failures, limit rejections and ledger shedding', async () => {
    const t = new Telemetry({ now: () => Date.now() })
    t.prom.syncBackends(['b1', 'b2'])
    t.breakerState('b1', 2)
    t.breakerState('b2', 1)
    t.cacheLookup('cache', 'hit')
    t.cacheLookup('cache', 'hit')
    t.cacheLookup('cache', 'miss')
    t.cacheLookup('semantic-cache', 'bypass')
    t.storeFailure('redis', 'fallback')
    t.limitRejected('token-limit', 'rate')
    t.limitRejected('token-limit', 'quota')
    t.limitRejected('token-limit', 'quota')
    t.ledgerDropped(5)
    t.prom.syncBackends(['b1', 'b3']) // a reload: b2 went away, b3 is new, b1 keeps its state
    const samples = parseProm(await t.prom.render())
    assert.deepEqual(samplesOf(samples, 'sluice_backend_circuit_state').map((s) => [s.labels.backend, s.value]).sort(), [['b1', 2], ['b3', 0]])
    assert.equal(sumOf(samples, 'sluice_cache_requests_total', { policy: 'cache', result: 'hit' }), 2)
    assert.equal(sumOf(samples, 'sluice_cache_requests_total', { policy: 'cache', result: 'miss' }), 1)
    assert.equal(sumOf(samples, 'sluice_cache_requests_total', { policy: 'semantic-cache', result: 'bypass' }), 1)
    assert.equal(sumOf(samples, 'sluice_store_failures_total', { store: 'redis', action: 'fallback' }), 1)
    assert.equal(sumOf(samples, 'sluice_limit_rejections_total', { policy: 'token-limit', reason: 'quota' }), 2)
    assert.equal(sumOf(samples, 'sluice_ledger_dropped_total'), 5)
    const recent = t.recent.snapshot(60_000).buckets.at(-1)!
    assert.equal(recent.cacheHits, 2)
    assert.equal(recent.cacheMisses, 1)
    await t.close()
  })

  it('keeps /metrics behind the admin token while the dashboard page itself is public', async () => {
    const g = await startTestGateway(`admin: { host: 127.0.0.1, port: 0, token: adm-secret-123 }\n${YAML}`)
    try {
      assert.equal((await fetch(`${g.adminUrl}/metrics`)).status, 401)
      assert.equal((await fetch(`${g.adminUrl}/admin/metrics/summary`)).status, 401)
      const ok = await fetch(`${g.adminUrl}/metrics`, { headers: { authorization: 'Bearer adm-secret-123' } })
      assert.equal(ok.status, 200)
      assert.match(ok.headers.get('content-type') ?? '', /^text\/plain/)
      assert.match(await ok.text(), /# TYPE sluice_tokens_total counter/)
      const page = await fetch(`${g.adminUrl}/dashboard`)
      assert.equal(page.status, 200)
      assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/)
      assert.equal((await fetch(`${g.adminUrl}/dashboard/..%2Fpackage.json`)).status, 404)
    } finally {
      await g.close()
    }
  })
})

describe('label cardinality cap', () => {
  it('sends combinations past the cap to one __overflow__ series, keeping totals and bounded labels', () => {
    const t = new SeriesTable<{ labels: Record<string, string>; n: number }>(['type', 'user'], 3, (labels) => ({ labels, n: 0 }), new Set(['type']))
    for (let i = 0; i < 100; i++) t.get(['prompt', `user-${i}`]).n += 1
    for (let i = 0; i < 100; i++) t.get(['completion', `user-${i}`]).n += 2
    const all = [...t.series()]
    assert.equal(t.count, 3)
    assert.equal(all.length, 5) // 3 real series + one overflow series per kept `type`
    assert.equal(all.reduce((a, s) => a + s.n, 0), 300)
    const over = all.filter((s) => s.labels.user === OVERFLOW)
    assert.deepEqual(over.map((s) => [s.labels.type, s.n]).sort(), [['completion', 200], ['prompt', 97]])
    assert.equal(t.overflowCount, 197)
    // A known combination keeps its own series after the cap is reached.
    t.get(['prompt', 'user-0']).n += 10
    assert.equal([...t.series()].find((s) => s.labels.user === 'user-0')!.n, 11)
  })

  it('cuts over-long label values', () => {
    const t = new SeriesTable<{ labels: Record<string, string> }>(['user'], 10, (labels) => ({ labels }))
    const long = 'x'.repeat(10_000)
    assert.equal(t.get([long]), t.get([long + 'y']))
    assert.equal(t.get([long]).labels.user!.length, 128)
  })

  it('holds a dimension like a user id to the configured cap end to end', async () => {
    const g = await startTestGateway(`telemetry: { maxSeries: 3 }\n${YAML}`)
    try {
      const users = ['u1', 'u2', 'u3', 'u4', 'u5', 'u6', 'u7']
      let total = 0
      for (const user of users) {
        const u = await chat(g.url, KEY_A, 'gpt-4o-mini', false, 2, user)
        total += u.prompt + u.completion
      }
      const samples = await scrapeUntil(g.adminUrl, (s) => sumOf(s, 'sluice_policy_tokens_total', { type: 'total' }) >= total)
      const totals = samplesOf(samples, 'sluice_policy_tokens_total', { type: 'total' })
      assert.equal(totals.length, 4) // the cap, plus the overflow series
      assert.equal(totals.reduce((a, s) => a + s.value, 0), total)
      const over = totals.find((s) => s.labels.user === OVERFLOW)
      assert.ok(over, 'an overflow series exists')
      assert.equal(over.labels.consumer, OVERFLOW)
      assert.equal(sumOf(samples, 'sluice_metric_series_overflow_total', { metric: 'sluice_policy_tokens_total' }), 4)
      // The request-level metrics have one combination here and are untouched.
      assert.equal(sumOf(samples, 'sluice_requests_total', { consumer: 'team-a', status: '200' }), users.length)
    } finally {
      await g.close()
    }
  })
})

describe('emit-token-metric configuration', () => {
  const load = (policy: string) => loadConfigText(`${YAML.replace(/policies:\n.*\n$/s, '')}policies:\n  - ${policy}\n`, { registry: builtinPolicies(), env: {} })

  it('accepts the contract example', () => {
    const res = load(`emit-token-metric: { dimensions: { consumer: consumer.id, model: request.model, user: 'request.headers["x-user-id"]' } }`)
    assert.equal(res.ok, true)
  })

  it('refuses bad dimension names, bad CEL and the gateway\'s own metric names', () => {
    for (const bad of [
      `emit-token-metric: { dimensions: { 'user-id': consumer.id } }`,
      `emit-token-metric: { dimensions: { __x: consumer.id } }`,
      `emit-token-metric: { dimensions: { type: consumer.id } }`,
      `emit-token-metric: { dimensions: { user: 'request.headers[' } }`,
      `emit-token-metric: { metric: sluice_tokens_total }`,
      `emit-token-metric: { metric: 'bad name' }`,
      `emit-token-metric: { unknownOption: 1 }`,
    ]) {
      const res = load(bad)
      assert.equal(res.ok, false, bad)
    }
  })

  it('refuses two instances sharing a metric with different dimensions, when the config is applied', async () => {
    const yaml = YAML.replace(/policies:\n.*\n$/s, '') + `policies:
  - emit-token-metric: { dimensions: { user: 'request.headers["x-user-id"]' } }
  - emit-token-metric: { dimensions: { team: consumer.metadata.team } }
`
    const g = await startTestGateway(YAML)
    try {
      const conflicting = loadConfigText(yaml, { registry: builtinPolicies(), env: {} })
      assert.ok(conflicting.ok)
      await assert.rejects(g.gw.reload(conflicting.config), (err: Error) => err.name === 'ConfigError' && /already recorded with the dimensions/.test(err.message))
      const renamed = loadConfigText(yaml.replace('{ dimensions: { team: consumer.metadata.team } }', '{ metric: sluice_team_tokens_total, dimensions: { team: consumer.metadata.team } }'), { registry: builtinPolicies(), env: {} })
      assert.ok(renamed.ok)
      assert.equal(typeof (await g.gw.reload(renamed.config)), 'number')
      await chat(g.url, KEY_A, 'gpt-4o-mini', false, 2, 'zed')
      const samples = await scrapeUntil(g.adminUrl, (s) => sumOf(s, 'sluice_team_tokens_total', { type: 'total' }) > 0)
      assert.equal(samplesOf(samples, 'sluice_team_tokens_total', { type: 'completion' }).length, 1)
      assert.equal(sumOf(samples, 'sluice_policy_tokens_total', { user: 'zed', type: 'completion' }), 2)
    } finally {
      await g.close()
    }
  })
})
