import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { ManualClock } from '../src/core/clock.ts'
import { loadConfigText } from '../src/config/load.ts'
import { builtinPolicies } from '../src/policies/registry.ts'
import { periodBounds } from '../src/policies/limits-common/periods.ts'
import { formatReset } from '../src/policies/limits-common/index.ts'
import { BASIC_YAML, TEST_KEY, authHeaders, startTestGateway, type TestGateway } from './helpers/gateway.ts'
import { adminLimits, chat, eventually, usedTokens } from './helpers/limits.ts'

const MESSAGES = [{ role: 'user', content: 'Say hello.' }]
// Fixed, derived by hand from OpenAI's chat token accounting for gpt-4o-mini (o200k_base, checked with gpt-tokenizer's
// encode): 3 tokens of framing per message + the role 'user' (1) + 'Say hello.' (Say| hello|. = 3), +3 priming the reply.
const PROMPT = 3 + 3 + 1 + 3 // = 10

const yamlWith = (policies: string, backend = '') => BASIC_YAML.replace('    type: mock\n', `    type: mock\n${backend}`) + `\npolicies:\n${policies}\n`

describe('token-limit: tokens per minute (memory store, fake clock)', () => {
  const clock = new ManualClock()
  let g: TestGateway
  before(async () => {
    g = await startTestGateway(yamlWith('  - token-limit: { counterKey: consumer.id, tokensPerMinute: 1000 }', '    completionTokens: 10\n'), { clock })
  })
  after(() => g.close())

  it('reserves prompt + max_tokens, answers with the x-ratelimit headers, then settles to the real usage', async () => {
    const a = await chat(g.url, { max_tokens: 100 })
    assert.equal(a.status, 200)
    assert.equal(a.headers.get('x-ratelimit-limit-tokens'), '1000')
    assert.equal(a.headers.get('x-ratelimit-remaining-tokens'), String(1000 - PROMPT - 100))
    assert.equal(a.headers.get('x-ratelimit-reset-tokens'), '1m0s')
    const actual = a.body.usage.total_tokens as number
    assert.equal(actual, PROMPT + 100) // the mock writes max_tokens tokens
    const b = await chat(g.url, {}) // no max_tokens: the backend writes 10 (completionTokens: 10)
    assert.equal(b.status, 200)
    assert.equal(b.body.usage.total_tokens, PROMPT + 10)
    // Reserved PROMPT + 256 (the default completion), settled to the PROMPT + 10 used.
    await eventually(() => usedTokens(g.adminUrl, 'team-a'), (u) => u === PROMPT + 100 + PROMPT + 10, 'settlement')
  })

  it('refuses with 429 rate_limit_exceeded and an exact retry-after when the window is full', async () => {
    clock.advance(20_000)
    const used = await usedTokens(g.adminUrl, 'team-a')
    const refused = await chat(g.url, { max_tokens: 1000 - used - PROMPT + 1 })
    assert.equal(refused.status, 429)
    assert.equal(refused.body.error.code, 'rate_limit_exceeded')
    assert.equal(refused.body.error.type, 'rate_limit_error')
    // Everything was used 20 s ago: it all leaves the window 40 s from now.
    assert.equal(refused.headers.get('retry-after-ms'), '40000')
    assert.equal(refused.headers.get('retry-after'), '40')
    assert.equal(refused.headers.get('x-ratelimit-remaining-tokens'), String(1000 - used))
    assert.equal(await usedTokens(g.adminUrl, 'team-a'), used, 'a refusal reserves nothing')
    clock.advance(40_000)
    const ok = await chat(g.url, { max_tokens: 1000 - PROMPT })
    assert.equal(ok.status, 200)
  })

  it('tells clients not to retry a request larger than the whole limit', async () => {
    clock.advance(120_000)
    const r = await chat(g.url, { max_tokens: 2000 })
    assert.equal(r.status, 429)
    assert.equal(r.headers.get('x-should-retry'), 'false')
    assert.equal(r.headers.get('retry-after'), null)
  })
})

describe('token-limit: quota with a fake clock crossing a period boundary', () => {
  const clock = new ManualClock(Date.parse('2026-01-31T23:58:00Z'))
  let g: TestGateway
  before(async () => {
    g = await startTestGateway(yamlWith('  - token-limit: { counterKey: consumer.id, tokenQuota: 200, tokenQuotaPeriod: monthly, remainingQuotaTokensHeaderName: x-remaining-quota }'), { clock })
  })
  after(() => g.close())

  it('refuses with 403 quota_exceeded until the month ends, then starts the new month empty', async () => {
    const a = await chat(g.url, { max_tokens: 150 })
    assert.equal(a.status, 200)
    assert.equal(a.headers.get('x-remaining-quota'), String(200 - PROMPT - 150))
    await eventually(() => usedTokens(g.adminUrl, 'team-a', 'quota'), (u) => u === PROMPT + 150, 'settlement')
    clock.advance(60_000) // 23:59 on 31 January
    const refused = await chat(g.url, { max_tokens: 100 })
    assert.equal(refused.status, 403)
    assert.equal(refused.body.error.code, 'quota_exceeded')
    assert.equal(refused.headers.get('retry-after'), '60')
    assert.match(refused.body.error.message, /2026-02-01T00:00:00.000Z/)
    clock.set(Date.parse('2026-02-01T00:00:00Z'))
    const next = await chat(g.url, { max_tokens: 100 })
    assert.equal(next.status, 200)
    const view = await adminLimits(g.adminUrl, 'team-a')
    const w = view.limits[0]!.windows[0]!
    assert.equal(w.period, 'monthly')
    assert.equal(w.resetAt, Date.parse('2026-03-01T00:00:00Z'))
  })

  it('uses UTC calendar periods; weeks start on Monday', () => {
    const wed = Date.parse('2026-01-07T15:30:00Z') // a Wednesday
    assert.deepEqual(periodBounds('weekly', wed), { start: Date.parse('2026-01-05T00:00:00Z'), end: Date.parse('2026-01-12T00:00:00Z') })
    const sun = Date.parse('2026-01-11T23:59:59Z')
    assert.equal(periodBounds('weekly', sun).start, Date.parse('2026-01-05T00:00:00Z'))
    assert.deepEqual(periodBounds('hourly', wed), { start: Date.parse('2026-01-07T15:00:00Z'), end: Date.parse('2026-01-07T16:00:00Z') })
    assert.deepEqual(periodBounds('daily', wed), { start: Date.parse('2026-01-07T00:00:00Z'), end: Date.parse('2026-01-08T00:00:00Z') })
    assert.deepEqual(periodBounds('monthly', Date.parse('2026-12-31T23:00:00Z')), { start: Date.parse('2026-12-01T00:00:00Z'), end: Date.parse('2027-01-01T00:00:00Z') })
    assert.deepEqual(periodBounds('yearly', wed), { start: Date.parse('2026-01-01T00:00:00Z'), end: Date.parse('2027-01-01T00:00:00Z') })
  })

  it('formats reset durations as OpenAI does', () => {
    assert.equal(formatReset(12), '12ms')
    assert.equal(formatReset(1500), '1.5s')
    assert.equal(formatReset(360_000), '6m0s')
    assert.equal(formatReset(3_723_000), '1h2m3s')
  })
})

describe('token-limit: streams are charged what they really generated', () => {
  const clock = new ManualClock()
  let g: TestGateway
  before(async () => {
    g = await startTestGateway(yamlWith('  - token-limit: { counterKey: consumer.id, tokensPerMinute: 100000 }', '    completionTokens: 12\n    tokensPerSecond: 200\n'), { clock })
  })
  after(() => g.close())

  it('charges a complete stream its real completion tokens, and strips the usage chunk the client did not ask for', async () => {
    const r = await chat(g.url, { stream: true })
    assert.equal(r.status, 200)
    assert.ok(!String(r.body).includes('"usage":{'), 'the injected usage chunk is not relayed')
    assert.equal(r.headers.get('x-ratelimit-remaining-tokens'), String(100000 - PROMPT - 256), 'reserved the default completion')
    await eventually(() => usedTokens(g.adminUrl, 'team-a'), (u) => u === PROMPT + 12, 'stream settlement')
  })

  it('charges an aborted stream what was generated before the cut', async () => {
    clock.advance(120_000)
    // Read before the request: by the time the headers arrive the mock has sent the first content already (the
    // gateway holds a stream until its first content), and counting from then undercounts what was generated.
    const mock = g.gw.mocks.server('mock-a')!
    const sentBefore = mock.stats.completionTokensSent
    const ctrl = new AbortController()
    const res = await fetch(`${g.url}/v1/chat/completions`, {
      method: 'POST', headers: authHeaders(TEST_KEY), signal: ctrl.signal,
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: MESSAGES, stream: true, max_tokens: 2000 }),
    })
    assert.equal(res.status, 200)
    const reader = res.body!.getReader()
    let seen = 0
    const dec = new TextDecoder()
    while (seen < 10) {
      const { value, done } = await reader.read()
      if (done) break
      seen += (dec.decode(value).match(/"content":"[^"]/g) ?? []).length
    }
    ctrl.abort()
    // Settled (not the reservation of PROMPT + 2000 any more): wait for it, then pin it from both sides. Each mock
    // content delta is exactly one token, so the client saw `seen` tokens; the backend generated at most what the
    // mock says it sent before the gateway cancelled it. The charge is the prompt plus something in between.
    const used = await eventually(() => usedTokens(g.adminUrl, 'team-a'), (u) => u > 0 && u < PROMPT + 2000, 'abort settlement')
    await eventually(async () => mock.stats.aborted, (n) => n >= 1, 'the upstream stream cancelled')
    const generated = mock.stats.completionTokensSent - sentBefore
    assert.ok(generated < 2000, `the backend stopped early (${generated} tokens)`)
    assert.ok(used >= PROMPT + seen, `charged at least the prompt and the ${seen} tokens the client saw (${used})`)
    assert.ok(used <= PROMPT + generated, `charged at most the prompt and the ${generated} tokens generated (${used})`)
  })
})

describe('token-limit and rate-limit together', () => {
  const clock = new ManualClock()
  let g: TestGateway
  before(async () => {
    g = await startTestGateway(yamlWith(
      '  - token-limit: { counterKey: consumer.id, tokensPerMinute: 100000 }\n  - rate-limit: { counterKey: consumer.id, requests: 2, per: 10s, remainingCallsHeaderName: x-calls-left }',
      '    completionTokens: 5\n',
    ), { clock })
  })
  after(() => g.close())

  it('a refusal by the second limit releases what the first reserved', async () => {
    const a = await chat(g.url, {})
    assert.equal(a.status, 200)
    assert.equal(a.headers.get('x-ratelimit-limit-requests'), '2')
    assert.equal(a.headers.get('x-ratelimit-remaining-requests'), '1')
    assert.equal(a.headers.get('x-calls-left'), '1')
    clock.advance(1000)
    assert.equal((await chat(g.url, {})).status, 200)
    await eventually(() => usedTokens(g.adminUrl, 'team-a'), (u) => u === 2 * (PROMPT + 5), 'settlement')
    clock.advance(1000)
    const refused = await chat(g.url, { max_tokens: 5000 })
    assert.equal(refused.status, 429)
    assert.equal(refused.body.error.code, 'rate_limit_exceeded')
    assert.equal(refused.headers.get('retry-after-ms'), '8000') // the first request leaves the 10 s window
    assert.equal(refused.headers.get('x-ratelimit-remaining-requests'), '0')
    assert.equal(await usedTokens(g.adminUrl, 'team-a'), 2 * (PROMPT + 5), 'the token reservation was released')
    const view = await adminLimits(g.adminUrl, 'team-a')
    assert.deepEqual(view.limits.map((l) => [l.policy, l.scope, l.counter]), [['token-limit', 'global', 'tokens:team-a'], ['rate-limit', 'global', 'requests:team-a']])
    assert.equal(view.limits[1]!.windows[0]!.used, 2)
  })
})

describe('token-limit configuration', () => {
  const load = (policy: string) => loadConfigText(`${BASIC_YAML}\npolicies:\n  - ${policy}\n`, { registry: builtinPolicies(), env: {} })
  it('needs a per-minute limit or a quota, and quota with its period', () => {
    const r1 = load('token-limit: { counterKey: consumer.id }')
    assert.equal(r1.ok, false)
    const r2 = load('token-limit: { tokenQuota: 100 }')
    assert.equal(r2.ok, false)
    const r3 = load('token-limit: { counterKey: "request.headers[", tokensPerMinute: 10 }')
    assert.equal(r3.ok, false)
    const ok = load('token-limit: { counterKey: consumer.id, tokensPerMinute: 5000, tokenQuota: 1000000, tokenQuotaPeriod: Monthly, estimatePromptTokens: true }')
    assert.equal(ok.ok, true, JSON.stringify(!ok.ok && ok.problems))
    assert.equal(load('rate-limit: { requests: 10, per: 1m }').ok, true)
    assert.equal(load('rate-limit: { per: 1m }').ok, false)
  })
})

describe('token-limit at global and product scope at once', () => {
  const clock = new ManualClock()
  let g: TestGateway
  before(async () => {
    const yaml = BASIC_YAML.replace('  - id: standard\n    models: [gpt-4o-mini, text-embedding-3-small]\n',
      `  - id: standard\n    models: [gpt-4o-mini, text-embedding-3-small]\n    policies:\n      - token-limit: { counterKey: '"model:" + request.model', tokensPerMinute: 500 }\n`)
      + '\npolicies:\n  - token-limit: { counterKey: consumer.id, tokensPerMinute: 100000 }\n'
    g = await startTestGateway(yaml, { clock })
  })
  after(() => g.close())

  it('applies the per-consumer and the per-model counter, and shows the tighter one', async () => {
    const a = await chat(g.url, { max_tokens: 100 })
    assert.equal(a.status, 200)
    assert.equal(a.headers.get('x-ratelimit-limit-tokens'), '500')
    assert.equal(a.headers.get('x-ratelimit-remaining-tokens'), String(500 - PROMPT - 100))
    await eventually(() => usedTokens(g.adminUrl, 'model:gpt-4o-mini'), (u) => u === PROMPT + 100, 'settlement')
    const byModel = await adminLimits(g.adminUrl, 'model:gpt-4o-mini')
    // Counters are shared by key value (as in APIM): both policies would read tokens:model:gpt-4o-mini.
    assert.deepEqual(byModel.limits.map((l) => [l.scope, l.counter, l.windows[0]!.used]), [['global', 'tokens:model:gpt-4o-mini', PROMPT + 100], ['product:standard', 'tokens:model:gpt-4o-mini', PROMPT + 100]])
    assert.equal(await usedTokens(g.adminUrl, 'team-a'), PROMPT + 100)
    const refused = await chat(g.url, { max_tokens: 450 })
    assert.equal(refused.status, 429)
    assert.equal(await usedTokens(g.adminUrl, 'team-a'), PROMPT + 100, 'the global reservation was released')
  })
})
