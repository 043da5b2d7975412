import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { ManualClock } from '../src/core/clock.ts'
import { loadConfigText, formatProblems } from '../src/config/load.ts'
import { builtinPolicies } from '../src/policies/registry.ts'
import { startTestGateway, type TestGateway } from './helpers/gateway.ts'
import { eventually } from './helpers/limits.ts'
import { startReceiver } from './helpers/webhook-receiver.ts'

// Prices written here, in USD per 1M tokens (= micro-dollars per token); the test's arithmetic is its own.
const IN = 2
const OUT = 8
const CACHED = 0.5
const micros = (prompt: number, completion: number, cached = 0) => (prompt - cached) * IN + cached * CACHED + completion * OUT

const KEYS = { a: 'sk-budget-team-a-0001', c: 'sk-budget-team-c-0001', s: 'sk-budget-team-s-0001', u: 'sk-budget-team-u-0001', f: 'sk-budget-team-f-0001' }
const SECRET = 'whsec-test-0123456789abcdef'
const DAY0 = Date.parse('2026-03-10T12:00:00Z')

interface Reply { status: number; headers: Headers; body: any; text: string }

async function chat(url: string, key: string, body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Tell me about budgets.' }], ...body }),
  })
  const text = await res.text()
  let parsed: any = null
  try { parsed = JSON.parse(text) } catch { /* stream */ }
  return { status: res.status, headers: res.headers, body: parsed, text }
}

async function budgets(adminUrl: string, consumer: string): Promise<any[]> {
  const res = await fetch(`${adminUrl}/admin/budgets?consumer=${consumer}`)
  assert.equal(res.status, 200)
  return ((await res.json()) as { budgets: any[] }).budgets
}

describe('budget policy (one process, memory store)', () => {
  let tg: TestGateway
  let receiver: Awaited<ReturnType<typeof startReceiver>>
  const clock = new ManualClock(DAY0)

  before(async () => {
    receiver = await startReceiver(SECRET, { failFirst: 2 })
    tg = await startTestGateway(`
pricing:
  models:
    gpt-4o-mini: { input: ${IN}, output: ${OUT}, cached: ${CACHED} }
    mini-cached: { input: ${IN}, output: ${OUT}, cached: ${CACHED} }
    mini-cut: { input: ${IN}, output: ${OUT}, cached: ${CACHED} }
webhooks: [ { id: finance, url: ${receiver.url}, secret: ${SECRET} } ]
webhookDelivery: { allow: [127.0.0.0/8], backoff: 20ms, timeout: 2s }
backends:
  - { id: mock-a, type: mock }
  - { id: mock-cached, type: mock, headers: { x-mock-cached-tokens: "6" } }
  - { id: mock-cut, type: mock, headers: { x-mock-reset-after-tokens: "7" } }
models:
  - { name: gpt-4o-mini, target: mock-a }
  - { name: mini-cached, target: mock-cached }
  - { name: mini-cut, target: mock-cut }
  - { name: house-model, target: mock-a }
products:
  - id: metered
    policies:
      - budget: { counterKey: consumer.id, usd: 0.01, period: daily }
  - id: alerted
    policies:
      - budget: { counterKey: consumer.id, usd: 0.002, period: daily, onExceeded: suspend, alerts: [ { at: 50%, webhook: finance }, { at: 80%, webhook: finance }, { at: 100%, webhook: finance } ] }
  - id: lenient
    policies:
      - budget: { usd: 1, period: monthly, unpricedModels: allow }
consumers:
  - { id: team-a, product: metered, keys: [ { value: ${KEYS.a} } ] }
  - { id: team-c, product: metered, keys: [ { value: ${KEYS.c} } ] }
  - { id: team-s, product: alerted, keys: [ { value: ${KEYS.s} } ] }
  - { id: team-u, product: lenient, keys: [ { value: ${KEYS.u} } ] }
`, { clock })
  })
  after(async () => {
    await tg?.close()
    await receiver?.close()
  })

  it('admits up to the budget from the reported usage, cached tokens at their price, then refuses until the next period', async () => {
    const limit = 10_000 // 0.01 USD in micro-dollars
    let spent = 0
    let maxEstimate = 0
    let ok = 0
    let refusal: Reply | null = null
    for (let i = 0; i < 100 && !refusal; i++) {
      const cached = i % 3 === 0 ? 6 : 0
      const r = await chat(tg.url, KEYS.a, { max_tokens: 40, ...(cached ? { model: 'mini-cached' } : {}) })
      if (r.status === 403) { refusal = r; break }
      assert.equal(r.status, 200, r.text)
      const u = r.body.usage
      assert.equal(u.prompt_tokens_details.cached_tokens, cached)
      const estimate = u.prompt_tokens * IN + 40 * OUT
      maxEstimate = Math.max(maxEstimate, estimate)
      // The header shows what is left once this request's worst case is reserved.
      assert.equal(Number(r.headers.get('x-sluice-budget-remaining-usd')), Math.round(limit - spent - estimate) / 1e6)
      spent += micros(u.prompt_tokens, u.completion_tokens, cached)
      ok++
      // Settlement runs after the response: wait for it so the next header is exact.
      await eventually(() => budgets(tg.adminUrl, 'team-a'), (b) => Math.abs(b[0].usedUsd * 1e6 - spent) <= ok, 'settled spending')
    }
    assert.ok(refusal, 'the budget never refused')
    assert.equal(refusal.body.error.code, 'budget_exceeded')
    assert.match(refusal.body.error.message, /2026-03-11T00:00:00\.000Z/)
    assert.equal(refusal.headers.get('x-sluice-budget-reset'), '2026-03-11T00:00:00.000Z')
    // Two-sided: never above the budget, and refused only once less than one request's worst case was left.
    assert.ok(spent <= limit, `spent ${spent} > ${limit}`)
    assert.ok(spent > limit - maxEstimate, `spent ${spent}, refused with more than one estimate (${maxEstimate}) left`)
    const [view] = await budgets(tg.adminUrl, 'team-a')
    assert.equal(view.limitUsd, 0.01)
    assert.ok(Math.abs(view.usedUsd * 1e6 - spent) <= ok, `budget view ${view.usedUsd} vs ${spent / 1e6}`)
    assert.equal(view.resetAt, '2026-03-11T00:00:00.000Z')

    // Another consumer on the same product has its own counter.
    assert.equal((await chat(tg.url, KEYS.c, { max_tokens: 5 })).status, 200)
    // The next day the budget renews.
    clock.set(Date.parse('2026-03-11T00:00:01Z'))
    const renewed = await chat(tg.url, KEYS.a, { max_tokens: 40 })
    assert.equal(renewed.status, 200)
    clock.set(DAY0)
  })

  it('bills a stream cut mid-way for what was generated', async () => {
    clock.set(Date.parse('2026-03-12T08:00:00Z'))
    const first = await chat(tg.url, KEYS.c, { max_tokens: 3 })
    assert.equal(first.status, 200)
    const prompt = first.body.usage.prompt_tokens as number
    const base = micros(prompt, first.body.usage.completion_tokens)
    await eventually(() => budgets(tg.adminUrl, 'team-c'), (b) => Math.abs(b[0].usedUsd * 1e6 - base) <= 1, 'first settlement')
    const cut = await chat(tg.url, KEYS.c, { model: 'mini-cut', max_tokens: 100, stream: true })
    assert.equal(cut.status, 200)
    const contentChunks = cut.text.split('\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6))).filter((j) => typeof j.choices?.[0]?.delta?.content === 'string' && j.choices[0].delta.content !== '')
    assert.equal(contentChunks.length, 7)
    const expected = base + micros(prompt, 7)
    const b = await eventually(() => budgets(tg.adminUrl, 'team-c'), (v) => Math.abs(v[0].usedUsd * 1e6 - expected) <= 2, 'cut stream settlement')
    // Not the 100-token reservation: what was generated.
    assert.ok(b[0].usedUsd * 1e6 < base + micros(prompt, 100))
    clock.set(DAY0)
  })

  it('fires each threshold once per period to a signed webhook (after two failures), suspends, and reinstates at the next period', async () => {
    clock.set(Date.parse('2026-03-13T10:00:00Z'))
    const statuses: string[] = []
    for (let i = 0; i < 30; i++) {
      const r = await chat(tg.url, KEYS.s, { max_tokens: 40 })
      statuses.push(r.status === 200 ? 'ok' : r.body.error.code)
      if (r.body?.error?.code === 'consumer_suspended') break
      // let settlement (and its threshold checks) land before the next call
      if (r.status === 200) await eventually(() => budgets(tg.adminUrl, 'team-s'), (b) => b[0].usedUsd > 0, 'settled')
    }
    assert.ok(statuses.includes('ok'), statuses.join(','))
    assert.ok(statuses.includes('budget_exceeded'), statuses.join(','))
    assert.equal(statuses.at(-1), 'consumer_suspended')
    // More refused calls change nothing: still one alert per threshold.
    for (let i = 0; i < 3; i++) assert.equal((await chat(tg.url, KEYS.s, { max_tokens: 40 })).body.error.code, 'consumer_suspended')
    await eventually(async () => receiver.accepted.length, (n) => n >= 3, 'three alerts delivered')
    await eventually(async () => tg.gw.finops.webhooks.stats, (s) => s.delivered === 3 && s.failedAttempts === 6, 'retries done')
    const got = receiver.accepted.map((h) => h.body.data.thresholdPercent).sort((a, b) => a - b)
    assert.deepEqual(got, [50, 80, 100])
    for (const h of receiver.accepted) {
      assert.equal(h.signatureValid, true)
      assert.equal(h.body.type, 'budget.threshold')
      assert.equal(h.body.data.consumer, 'team-s')
      assert.equal(h.body.data.limit, 0.002)
      assert.equal(h.body.data.periodEnd, '2026-03-14T00:00:00.000Z')
      assert.equal(receiver.attempts.get(h.body.id), 3) // failed twice, then accepted
    }
    const consumers = await (await fetch(`${tg.adminUrl}/admin/consumers/team-s`)).json() as any
    assert.equal(consumers.suspended.until, '2026-03-14T00:00:00.000Z')
    assert.equal(consumers.suspended.by, 'policy:budget')
    const audit = await (await fetch(`${tg.adminUrl}/admin/audit?target=consumer:team-s`)).json() as any
    assert.equal(audit.entries[0].action, 'consumer.suspend')
    assert.equal(audit.entries[0].actor, 'policy:budget')

    // The next period: reinstated, and the thresholds arm again (a new 50 % alert for the new day).
    clock.set(Date.parse('2026-03-14T00:00:05Z'))
    const back = await chat(tg.url, KEYS.s, { max_tokens: 40 })
    assert.equal(back.status, 200, back.text)
    for (let i = 0; i < 5; i++) {
      await eventually(() => budgets(tg.adminUrl, 'team-s'), (b) => b[0].usedUsd > 0, 'settled')
      const r = await chat(tg.url, KEYS.s, { max_tokens: 40 })
      if (r.status !== 200) break
    }
    await eventually(async () => receiver.accepted.filter((h) => h.body.data.periodEnd === '2026-03-15T00:00:00.000Z' && h.body.data.thresholdPercent === 50).length, (n) => n === 1, 'a 50% alert for the new period')
    clock.set(DAY0)
  })

  it('refuses a model with no price unless the budget says allow', async () => {
    const refused = await chat(tg.url, KEYS.a, { model: 'house-model', max_tokens: 5 })
    assert.equal(refused.status, 403)
    assert.equal(refused.body.error.code, 'model_not_allowed')
    assert.match(refused.body.error.message, /no price/)
    const allowed = await chat(tg.url, KEYS.u, { model: 'house-model', max_tokens: 5 })
    assert.equal(allowed.status, 200)
    // ...and a priced model on that budget is still charged.
    const priced = await chat(tg.url, KEYS.u, { max_tokens: 5 })
    assert.equal(priced.status, 200)
    assert.ok(Number(priced.headers.get('x-sluice-budget-remaining-usd')) < 1)
  })
})

describe('budget configuration is checked', () => {
  const load = (policy: string, extra = '') => loadConfigText(`
backends: [ { id: m, type: mock } ]
models: [ { name: gpt-4o-mini, target: m } ]
${extra}
policies:
  - budget: ${policy}
`, { registry: builtinPolicies(), env: {} })
  const problems = (policy: string, extra = '') => {
    const r = load(policy, extra)
    return r.ok ? '' : formatProblems(r.problems)
  }

  it('accepts a valid budget and refuses bad ones with clear messages', () => {
    assert.equal(load('{ usd: 100, period: monthly }').ok, true)
    assert.equal(load('{ usd: 5, window: 30d, currency: usd }').ok, true)
    assert.match(problems('{ usd: -5, period: monthly }'), /more than 0 USD/)
    assert.match(problems('{ usd: 0, period: monthly }'), /more than 0 USD/)
    assert.match(problems('{ usd: 1e12, period: monthly }'), /likely typo/)
    assert.match(problems('{ usd: "lots", period: monthly }'), /usd/)
    assert.match(problems('{ usd: 10, period: monthly, currency: EUR }'), /only USD/)
    assert.match(problems('{ usd: 10 }'), /period .* or a rolling window/)
    assert.match(problems('{ usd: 10, period: monthly, window: 1d }'), /exactly one/)
    assert.match(problems('{ usd: 10, period: fortnightly }'), /period|duration/)
    assert.match(problems('{ usd: 10, period: monthly, alerts: [ { at: 80 percent } ] }'), /not a threshold/)
    assert.match(problems('{ usd: 10, period: monthly, alerts: [ { at: 80%, webhook: nope } ] }'), /unknown webhook "nope"/)
    assert.match(problems('{ usd: 10, period: monthly, onExceeded: explode }'), /onExceeded/)
    // A webhook at a loopback or private address needs webhookDelivery.allow.
    assert.match(problems('{ usd: 10, period: monthly }', 'webhooks: [ { id: w, url: "http://127.0.0.1:9/x", secret: abcdefghijklmnopq } ]'), /webhookDelivery.allow/)
    assert.match(problems('{ usd: 10, period: monthly }', 'webhooks: [ { id: w, url: "http://10.1.2.3/x", secret: abcdefghijklmnopq } ]'), /private or reserved/)
    assert.equal(load('{ usd: 10, period: monthly }', 'webhooks: [ { id: w, url: "http://127.0.0.1:9/x", secret: abcdefghijklmnopq } ]\nwebhookDelivery: { allow: [127.0.0.1] }').ok, true)
    assert.match(problems('{ usd: 10, period: monthly }', 'webhooks: [ { id: w, url: "ftp://x.example/y", secret: abcdefghijklmnopq } ]'), /http/)
    assert.match(problems('{ usd: 10, period: monthly }', 'webhooks: [ { id: w, url: "https://x.example/y", secret: short } ]'), /16 characters/)
    assert.match(problems('{ usd: 10, period: monthly }', 'webhookDelivery: { allow: [not-a-range] }'), /CIDR/)
  })
})

describe('token quotas get the same alerts', () => {
  it('fires 80 % and 100 % of a token quota once each, signed', async () => {
    const receiver = await startReceiver(SECRET)
    const clock = new ManualClock(DAY0)
    const tg = await startTestGateway(`
webhooks: [ { id: ops, url: ${receiver.url}, secret: ${SECRET} } ]
webhookDelivery: { allow: [127.0.0.0/8], backoff: 20ms }
backends: [ { id: m, type: mock } ]
models: [ { name: gpt-4o-mini, target: m } ]
consumers: [ { id: team-q, keys: [ { value: ${KEYS.f} } ] } ]
policies:
  - token-limit: { tokenQuota: 300, tokenQuotaPeriod: daily, alerts: [ { at: 80%, webhook: ops }, { at: 100%, webhook: ops } ] }
`, { clock })
    try {
      let refused = 0
      let served = 0
      for (let i = 0; i < 40 && refused < 3; i++) {
        const r = await chat(tg.url, KEYS.f, { max_tokens: 20 })
        if (r.status === 403) { assert.equal(r.body.error.code, 'quota_exceeded'); refused++ } else { assert.equal(r.status, 200); served++ }
        await eventually(async () => tg.gw.finops.webhooks.stats, (s) => s.delivered + s.gaveUp >= receiver.accepted.length, 'idle')
      }
      assert.ok(served > 3 && refused === 3)
      await eventually(async () => receiver.accepted.length, (n) => n === 2, 'two quota alerts')
      assert.deepEqual(receiver.accepted.map((h) => [h.body.type, h.body.data.thresholdPercent, h.body.data.unit, h.signatureValid]).sort(), [['token-quota.threshold', 100, 'tokens', true], ['token-quota.threshold', 80, 'tokens', true]])
    } finally {
      await tg.close()
      await receiver.close()
    }
  })
})
