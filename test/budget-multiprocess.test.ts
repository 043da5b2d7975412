import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { serviceAvailable } from './helpers/gateway.ts'
import { freePort, spawnGateway, type GatewayProcess } from './helpers/process.ts'
import { startReceiver } from './helpers/webhook-receiver.ts'

// Prices written here (USD per 1M tokens = micro-dollars per token); the test does its own arithmetic.
const IN = 2
const OUT = 8
const CACHED = 0.5
const BUDGET = 20_000 // micro-dollars = 0.02 USD
const KEY = 'sk-mp-budget-team-a-01'
const KEY_S = 'sk-mp-budget-team-s-01'
const ADMIN = 'admin-token-for-budget-mp'
const SECRET = 'whsec-mp-0123456789abcdef'
const MESSAGES = [{ role: 'user', content: 'Summarise the quarterly spending report.' }]

const redisUp = await serviceAvailable('redis')
const dir = mkdtempSync(join(tmpdir(), 'sluice-budget-mp-'))
const prefix = `sluice-bmp-${randomUUID().slice(0, 8)}:`
const running: GatewayProcess[] = []

interface Node { url: string; admin: string }

async function startFleet(count: number, receiverUrl: string): Promise<Node[]> {
  const nodes: Node[] = []
  const ledger = join(dir, 'shared.db')
  for (let i = 0; i < count; i++) {
    const [port, adminPort] = [await freePort(), await freePort()]
    const file = join(dir, `gw-${i}.yaml`)
    writeFileSync(file, `
listen: { host: 127.0.0.1, port: ${port} }
admin: { host: 127.0.0.1, port: ${adminPort}, token: ${ADMIN} }
ledger: { type: sqlite, path: ${ledger}, flushInterval: 50ms }
logging: { level: warn }
store: { type: redis, url: "redis://127.0.0.1:6379", keyPrefix: "${prefix}", commandTimeout: 10s }
management: { resync: 30s }
pricing:
  models:
    gpt-4o-mini: { input: ${IN}, output: ${OUT}, cached: ${CACHED} }
    mini-cached: { input: ${IN}, output: ${OUT}, cached: ${CACHED} }
    mini-cut: { input: ${IN}, output: ${OUT}, cached: ${CACHED} }
webhooks: [ { id: finance, url: "${receiverUrl}", secret: ${SECRET} } ]
webhookDelivery: { allow: [127.0.0.0/8], backoff: 50ms }
backends:
  - { id: mock-a, type: mock, latency: 5ms }
  - { id: mock-cached, type: mock, latency: 5ms, headers: { x-mock-cached-tokens: "8" } }
  - { id: mock-cut, type: mock, headers: { x-mock-reset-after-tokens: "5" } }
models:
  - { name: gpt-4o-mini, target: mock-a }
  - { name: mini-cached, target: mock-cached }
  - { name: mini-cut, target: mock-cut }
products:
  - id: metered
    policies:
      - budget: { counterKey: consumer.id, usd: ${BUDGET / 1e6}, period: 30d, alerts: [ { at: 80%, webhook: finance }, { at: 100%, webhook: finance } ] }
  - id: short
    policies:
      - budget: { counterKey: consumer.id, usd: 0.001, period: 4s, onExceeded: suspend }
consumers:
  - { id: team-a, product: metered, keys: [ { value: ${KEY} } ] }
  - { id: team-s, product: short, keys: [ { value: ${KEY_S} } ] }
`)
    const p = await spawnGateway(file, port)
    running.push(p)
    nodes.push({ url: p.url, admin: `http://127.0.0.1:${adminPort}` })
  }
  return nodes
}

const admin = (node: Node, path: string, init: RequestInit = {}) =>
  fetch(`${node.admin}${path}`, { ...init, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json', ...(init.headers ?? {}) } })

async function call(node: Node, key: string, body: Record<string, unknown>) {
  const res = await fetch(`${node.url}/v1/chat/completions`, {
    method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: MESSAGES, ...body }),
  })
  const text = await res.text()
  let json: any = null
  try { json = JSON.parse(text) } catch { /* a stream */ }
  return { status: res.status, text, json, headers: res.headers }
}

/** The usage the mock reported to the client: the body's, or the stream's usage chunk; for a cut stream, the content chunks received. */
function reported(kind: string, r: { text: string; json: any }): { prompt: number; completion: number; cached: number } | { cutChunks: number } {
  if (kind === 'cut') {
    const chunks = r.text.split('\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)))
    return { cutChunks: chunks.filter((j) => typeof j.choices?.[0]?.delta?.content === 'string' && j.choices[0].delta.content !== '').length }
  }
  let u = r.json?.usage
  if (!u) for (const l of r.text.split('\n')) if (l.startsWith('data: {')) { const j = JSON.parse(l.slice(6)); if (j.usage) u = j.usage }
  return { prompt: u.prompt_tokens, completion: u.completion_tokens, cached: u.prompt_tokens_details?.cached_tokens ?? 0 }
}

async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms
  let last: T
  do {
    last = await read()
    if (ok(last)) return last
    await new Promise((r) => setTimeout(r, 25))
  } while (Date.now() < end)
  throw new Error(`${what} did not happen within ${ms} ms; last: ${JSON.stringify(last)}`)
}

describe('budgets across three gateway processes on one Redis', { skip: !redisUp }, () => {
  let nodes: Node[]
  let receiver: Awaited<ReturnType<typeof startReceiver>>

  before(async () => {
    receiver = await startReceiver(SECRET, { failFirst: 2 })
    nodes = await startFleet(3, receiver.url)
  })
  after(async () => {
    for (const p of running) if (p.child.exitCode === null) p.child.kill('SIGKILL')
    await receiver?.close()
    rmSync(dir, { recursive: true, force: true })
    const r = new Redis('redis://127.0.0.1:6379', { lazyConnect: true })
    await r.connect()
    const keys = await r.keys(`${prefix}*`)
    if (keys.length) await r.del(...keys)
    await r.quit()
  })

  it('concurrent streamed and non-streamed load spends no more than the budget, and not much less', { timeout: 120_000 }, async () => {
    let promptTokens = 0
    let spent = 0 // micro-dollars, from what the mock reported
    let admitted = 0
    let cutCount = 0
    const kinds = ['plain', 'stream', 'cached', 'cut', 'stream-cached'] as const
    const other: string[] = []
    for (let wave = 0; wave < 40; wave++) {
      const answers = await Promise.all(Array.from({ length: 24 }, async (_, i) => {
        const kind = kinds[(wave + i) % kinds.length]!
        const max = 20 + ((wave * 7 + i * 13) % 5) * 10
        const model = kind === 'cached' || kind === 'stream-cached' ? 'mini-cached' : kind === 'cut' ? 'mini-cut' : 'gpt-4o-mini'
        const stream = kind !== 'plain' && kind !== 'cached'
        const r = await call(nodes[i % nodes.length]!, KEY, { model, max_tokens: max, stream, ...(stream ? { stream_options: { include_usage: true } } : {}) })
        return { kind, r }
      }))
      let ok = 0
      for (const { kind, r } of answers) {
        if (r.status === 403 && r.json?.error?.code === 'budget_exceeded') continue
        if (r.status !== 200) { other.push(`${r.status} ${r.text.slice(0, 200)}`); continue }
        ok++
        admitted++
        const u = reported(kind, r)
        if ('cutChunks' in u) {
          assert.equal(u.cutChunks, 5)
          cutCount++ // billed below, once the prompt size is known
        } else {
          promptTokens = u.prompt
          spent += (u.prompt - u.cached) * IN + u.cached * CACHED + u.completion * OUT
        }
      }
      if (ok === 0) break
    }
    assert.deepEqual(other, [])
    // A cut stream is billed its prompt and the 5 tokens generated.
    spent += cutCount * (promptTokens * IN + 5 * OUT)
    // Everything in flight has settled: now probe each replica until none admits the smallest request.
    const smallest = promptTokens * IN + 20 * OUT
    for (let round = 0; round < 50; round++) {
      let any = false
      for (const n of nodes) {
        const r = await call(n, KEY, { max_tokens: 20 })
        if (r.status === 200) {
          any = true
          admitted++
          spent += r.json.usage.prompt_tokens * IN + r.json.usage.completion_tokens * OUT
        } else assert.equal(r.json.error.code, 'budget_exceeded')
      }
      if (!any) break
    }
    assert.ok(admitted > 20 && cutCount > 0, `only ${admitted} admitted, ${cutCount} cut streams`)
    process.stderr.write(`# admitted ${admitted} (${cutCount} cut streams), spent ${spent} µ$ of ${BUDGET}\n`)
    // Server rounding is up, by at most a micro-dollar per request: the server's count is >= this one.
    assert.ok(spent <= BUDGET, `spent ${spent} µ$ of a ${BUDGET} µ$ budget`)
    assert.ok(spent >= BUDGET - smallest - admitted, `spent ${spent} µ$: refused with more than one request's estimate (${smallest}) left`)
    // Every replica shows the same spending, from the shared store.
    for (const n of nodes) {
      const view = await (await admin(n, '/admin/budgets?consumer=team-a')).json() as any
      const used = view.budgets[0].usedUsd * 1e6
      assert.ok(used >= spent - 0.5 && used <= spent + admitted, `replica shows ${used} µ$, the test counted ${spent}`)
    }
    // Exactly one 80 % and one 100 % alert, each delivered after two failures, with a valid signature.
    await until(async () => receiver.accepted.length, (n) => n >= 2, 10_000, 'two alerts')
    await new Promise((r) => setTimeout(r, 300)) // a duplicate would have arrived by now: the retries are 50-100 ms apart
    const at = receiver.accepted.map((h) => h.body.data.thresholdPercent).sort((a, b) => a - b)
    assert.deepEqual(at, [80, 100])
    for (const h of receiver.accepted) {
      assert.equal(h.signatureValid, true)
      assert.equal(receiver.attempts.get(h.body.id), 3)
    }
  })

  it('a consumer suspended by its budget is refused on every replica within a second, and served again at the next period', { timeout: 60_000 }, async () => {
    // Start at the beginning of a 4 s period so the spending and the checks fit in it.
    const periodMs = 4000
    await new Promise((r) => setTimeout(r, periodMs - (Date.now() % periodMs) + 20))
    let suspendedAt = 0
    for (let i = 0; i < 40 && !suspendedAt; i++) {
      const r = await call(nodes[0]!, KEY_S, { max_tokens: 20 })
      if (r.status === 403) {
        if (r.json.error.code === 'budget_exceeded' || r.json.error.code === 'consumer_suspended') suspendedAt = Date.now()
        else assert.fail(r.text)
      }
    }
    assert.ok(suspendedAt > 0, 'never refused')
    const lag: number[] = []
    await Promise.all(nodes.map(async (n, i) => {
      await until(() => call(n, KEY_S, { max_tokens: 1 }), (r) => r.json?.error?.code === 'consumer_suspended', 1500, `suspension on replica ${i}`)
      lag.push(Date.now() - suspendedAt)
    }))
    assert.ok(Math.max(...lag) <= 1000, `replicas saw the suspension after ${lag.join(', ')} ms`)
    const view = await (await admin(nodes[2]!, '/admin/consumers/team-s')).json() as any
    assert.equal(view.suspended.by, 'policy:budget')
    const until_ = Date.parse(view.suspended.until)
    assert.equal(until_ % periodMs, 0)
    // The next period: every replica serves it again.
    await Promise.all(nodes.map((n, i) => until(() => call(n, KEY_S, { max_tokens: 1 }), (r) => r.status === 200, periodMs + 2000, `reinstated on replica ${i}`)))
    assert.ok(Date.now() >= until_)
  })

  it('a consumer created on replica A is served by replica B within a second; its deletion holds on both; the audit shows both', { timeout: 60_000 }, async () => {
    const [a, b] = [nodes[0]!, nodes[1]!]
    const id = `team-new-${randomUUID().slice(0, 6)}`
    const created = await admin(a, '/admin/consumers', { method: 'POST', body: JSON.stringify({ id, product: 'metered', metadata: { team: 'finance' } }), headers: { 'x-sluice-actor': 'alice' } })
    assert.equal(created.status, 201, await created.clone().text())
    const t0 = Date.now()
    const keyRes = await admin(a, '/admin/keys', { method: 'POST', body: JSON.stringify({ consumer: id, label: 'ci' }), headers: { 'x-sluice-actor': 'alice' } })
    assert.equal(keyRes.status, 201)
    const { key } = await keyRes.json() as { key: string }
    // Before: unknown key on B would be 401; within a second B serves it.
    await until(() => call(b, key, { max_tokens: 2 }), (r) => r.status === 200, 1000, 'B serving the new consumer')
    assert.ok(Date.now() - t0 <= 1000)
    const seenOnB = await (await admin(b, `/admin/consumers/${id}`)).json() as any
    assert.equal(seenOnB.source, 'api')
    assert.equal(seenOnB.metadata.team, 'finance')

    const del = await admin(a, `/admin/consumers/${id}`, { method: 'DELETE', headers: { 'x-sluice-actor': 'bob' } })
    assert.equal(del.status, 200)
    const t1 = Date.now()
    await Promise.all([a, b].map((n) => until(() => call(n, key, { max_tokens: 2 }), (r) => r.status === 401, 1000, 'deletion honoured')))
    assert.ok(Date.now() - t1 <= 1000)
    const audit = await (await admin(b, `/admin/audit?target=consumer:${id}`)).json() as any
    const actions = audit.entries.map((e: any) => `${e.action} by ${e.actor}`)
    assert.deepEqual(actions, [`consumer.delete by bob`, `consumer.create by alice`])
    assert.equal(audit.entries[0].before.id, id)
    assert.equal(audit.entries[0].after, null)
    assert.equal(audit.entries[1].after.product, 'metered')
  })
})

