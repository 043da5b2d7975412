import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { ManualClock } from '../src/core/clock.ts'
import { WebhookDispatcher } from '../src/finops/webhooks.ts'
import { startTestGateway, type TestGateway } from './helpers/gateway.ts'
import { eventually } from './helpers/limits.ts'
import { startReceiver } from './helpers/webhook-receiver.ts'

const FILE_KEY = 'sk-management-file-key-1'
const DAY0 = Date.parse('2026-05-04T09:00:00Z')

describe('run-time consumers, products and keys (one process, SQLite)', () => {
  let tg: TestGateway
  let dir: string
  const clock = new ManualClock(DAY0)
  const admin = (path: string, init: RequestInit = {}) => fetch(`${tg.adminUrl}${path}`, { ...init, headers: { 'content-type': 'application/json', ...(init.headers ?? {}) } })
  const post = (path: string, body: unknown, actor = 'carol') => admin(path, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'x-sluice-actor': actor } })
  const chat = (key: string) => fetch(`${tg.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', max_tokens: 3, messages: [{ role: 'user', content: 'hi' }] }) })

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-mgmt-'))
    tg = await startTestGateway(`
ledger: { type: sqlite, path: ${join(dir, 'ledger.db')}, flushInterval: 20ms }
backends: [ { id: m, type: mock } ]
models: [ { name: gpt-4o-mini, target: m }, { name: gpt-4o, target: m } ]
products:
  - id: file-product
    policies: [ { budget: { usd: 5, period: monthly } } ]
consumers:
  - { id: file-team, product: file-product, keys: [ { value: ${FILE_KEY} } ] }
`, { clock, keyStore: undefined })
  })
  after(async () => {
    await tg?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('creates a product and a consumer, serves its key, and refuses what the file owns', async () => {
    const product = await post('/admin/products', { id: 'api-product', models: ['gpt-4o-mini'], policies: [{ budget: { usd: 2, period: 'daily' } }] })
    assert.equal(product.status, 201, await product.clone().text())
    const consumer = await post('/admin/consumers', { id: 'api-team', product: 'api-product', metadata: { cost_center: 'cc-42' } })
    assert.equal(consumer.status, 201)
    const keyRes = await post('/admin/keys', { consumer: 'api-team', label: 'laptop' })
    const { key, id: keyId } = await keyRes.json() as { key: string; id: string }
    const ok = await chat(key)
    assert.equal(ok.status, 200)
    assert.equal(ok.headers.get('x-sluice-budget-remaining-usd') !== null, true)

    // The file's consumers and products are read-only here.
    for (const [method, path] of [['PATCH', '/admin/consumers/file-team'], ['DELETE', '/admin/consumers/file-team'], ['PATCH', '/admin/products/file-product'], ['DELETE', '/admin/products/file-product']] as const) {
      const r = await admin(path, { method, body: '{}' })
      assert.equal(r.status, 409, path)
      assert.match(((await r.json()) as any).error.message, /configuration file/)
    }
    assert.equal((await post('/admin/consumers', { id: 'file-team' })).status, 409)
    assert.equal((await post('/admin/consumers', { id: 'api-team' })).status, 409)
    // A product in use cannot go.
    assert.equal((await admin('/admin/products/api-product', { method: 'DELETE' })).status, 409)

    const list = await (await admin('/admin/consumers')).json() as any
    const sources = Object.fromEntries(list.consumers.map((c: any) => [c.id, c.source]))
    assert.deepEqual(sources, { 'file-team': 'config', 'api-team': 'api' })

    // An update takes effect at once: moving the consumer to the file's product (which allows gpt-4o).
    const moved = await admin('/admin/consumers/api-team', { method: 'PATCH', body: JSON.stringify({ product: 'file-product' }) })
    assert.equal(moved.status, 200)
    assert.equal(((await moved.json()) as any).product, 'file-product')
    assert.equal((await admin(`/admin/keys/${keyId}`, { method: 'DELETE' })).status, 200)
    assert.equal((await chat(key)).status, 401)
  })

  it('answers bad input with clear errors and stores nothing', async () => {
    const cases: Array<[unknown, RegExp]> = [
      ['{not json', /not valid JSON/],
      [[1, 2], /JSON object/],
      [{}, /consumer id/],
      [{ id: '' }, /consumer id/],
      [{ id: 'x'.repeat(300) }, /consumer id/],
      [{ id: 'bad id with spaces' }, /consumer id/],
      [{ id: 'ok-1', product: 'no-such-product' }, /existing product/],
      [{ id: 'ok-2', metadata: 'flat' }, /metadata/],
      [{ id: 'ok-3', metadata: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, 'v'])) }, /at most 32/],
      [{ id: 'ok-4', metadata: { k: 'v'.repeat(2000) } }, /at most 512/],
    ]
    for (const [body, msg] of cases) {
      const r = await post('/admin/consumers', body)
      assert.equal(r.status, 400, JSON.stringify(body).slice(0, 80))
      const e = (await r.json()) as any
      assert.equal(e.error.code, 'invalid_request_error')
      assert.match(e.error.message, msg)
    }
    const badProducts: Array<[unknown, RegExp]> = [
      [{ id: 'p1', policies: [{ budget: { usd: -1, period: 'daily' } }] }, /invalid options/],
      [{ id: 'p2', policies: [{ budget: { usd: 10, period: 'daily', currency: 'EUR' } }] }, /invalid options/],
      [{ id: 'p3', policies: [{ 'no-such-policy': {} }] }, /unknown policy/],
      [{ id: 'p4', models: ['not-a-model'] }, /known model/],
      [{ id: 'p5', policies: [{ budget: { usd: 10, period: 'daily', alerts: [{ at: '80%', webhook: 'nowhere' }] } }] }, /webhook "nowhere"/],
      [{ id: 'p6', policies: 'budget' }, /list of at most/],
    ]
    for (const [body, msg] of badProducts) {
      const r = await post('/admin/products', body)
      assert.equal(r.status, 400)
      assert.match(((await r.json()) as any).error.message, msg)
    }
    const ids = ((await (await admin('/admin/consumers')).json()) as any).consumers.map((c: any) => c.id)
    assert.ok(!ids.some((i: string) => i.startsWith('ok-')))
    const suspendBad = await post('/admin/consumers/file-team/suspend', { until: '2001-01-01T00:00:00Z' })
    assert.equal(suspendBad.status, 400)
  })

  it('takes a flood of concurrent admin writes without losing one, each audited', async () => {
    const n = 200
    const answers = await Promise.all(Array.from({ length: n }, (_, i) => post('/admin/consumers', { id: `flood-${i}`, metadata: { i: String(i) } }, `bot-${i % 5}`)))
    assert.deepEqual([...new Set(answers.map((a) => a.status))], [201])
    const list = (await (await admin('/admin/consumers')).json()) as any
    assert.equal(list.consumers.filter((c: any) => c.id.startsWith('flood-')).length, n)
    const audit = (await (await admin('/admin/audit?limit=1000')).json()) as any
    assert.equal(audit.entries.filter((e: any) => e.action === 'consumer.create' && e.target.startsWith('consumer:flood-')).length, n)
    const deleted = await Promise.all(Array.from({ length: n }, (_, i) => admin(`/admin/consumers/flood-${i}`, { method: 'DELETE' })))
    assert.deepEqual([...new Set(deleted.map((a) => a.status))], [200])
    assert.equal(((await (await admin('/admin/consumers')).json()) as any).consumers.filter((c: any) => c.id.startsWith('flood-')).length, 0)
    assert.equal((await admin('/admin/audit?limit=5000')).status, 400)
  })

  it('suspends and reinstates by admin, and lets a key read itself and rotate with a grace period', async () => {
    const keyRes = await post('/admin/keys', { consumer: 'file-team', label: 'rotating' })
    const { key: oldKey } = await keyRes.json() as { key: string }
    const me = await fetch(`${tg.url}/v1/sluice/me`, { headers: { authorization: `Bearer ${oldKey}` } })
    assert.equal(me.status, 200)
    const body = (await me.json()) as any
    assert.equal(body.consumer.id, 'file-team')
    assert.equal(body.key.source, 'api')
    assert.equal(body.budgets.length, 1)
    assert.equal(body.budgets[0].limitUsd, 5)
    assert.equal(body.suspended, null)
    assert.equal((await fetch(`${tg.url}/v1/sluice/me`)).status, 401)

    assert.equal((await post('/admin/consumers/file-team/suspend', { reason: 'invoice overdue' }, 'dave')).status, 200)
    const refused = await chat(FILE_KEY)
    assert.equal(refused.status, 403)
    const err = (await refused.json()) as any
    assert.equal(err.error.code, 'consumer_suspended')
    assert.match(err.error.message, /invoice overdue/)
    // /me still answers, and says why.
    assert.match(((await (await fetch(`${tg.url}/v1/sluice/me`, { headers: { authorization: `Bearer ${FILE_KEY}` } })).json()) as any).suspended.reason, /invoice overdue/)
    assert.equal((await post('/admin/consumers/file-team/reinstate', {}, 'dave')).status, 200)
    assert.equal((await chat(FILE_KEY)).status, 200)

    // Rotation: the new key works now, the old one until the grace ends.
    const rot = await fetch(`${tg.url}/v1/sluice/me/rotate`, { method: 'POST', headers: { authorization: `Bearer ${oldKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ grace: '10m' }) })
    assert.equal(rot.status, 201)
    const r = (await rot.json()) as any
    assert.equal(r.oldKeyExpiresAt, new Date(DAY0 + 600_000).toISOString())
    assert.equal((await chat(r.key)).status, 200)
    assert.equal((await chat(oldKey)).status, 200)
    clock.set(DAY0 + 600_001)
    tg.gw.auth.invalidate()
    assert.equal((await chat(oldKey)).status, 401)
    assert.equal((await chat(r.key)).status, 200)
    // A config-file key cannot rotate itself.
    assert.equal((await fetch(`${tg.url}/v1/sluice/me/rotate`, { method: 'POST', headers: { authorization: `Bearer ${FILE_KEY}` } })).status, 409)
    const audit = (await (await admin('/admin/audit?target=consumer:file-team')).json()) as any
    assert.deepEqual(audit.entries.slice(0, 2).map((e: any) => `${e.action}:${e.actor}`), ['consumer.reinstate:dave', 'consumer.suspend:dave'])
    clock.set(DAY0)
  })
})

describe('webhook delivery refuses bad receivers cleanly', () => {
  const logger = pino({ level: 'silent' })
  const hook = (url: string) => ({ id: 'w', url, secret: 'whsec-0123456789abcdef' })

  it('gives up on a receiver that hangs, after its attempts, without blocking anything', async () => {
    const rcv = await startReceiver('x', { mode: 'hang' })
    const d = new WebhookDispatcher([hook(rcv.url)], { allow: ['127.0.0.0/8'], timeout: 150, maxAttempts: 2, backoff: 10, maxQueue: 10 }, logger)
    d.send('w', 'test', {})
    await eventually(async () => d.stats, (s) => s.gaveUp === 1, 'gave up')
    assert.equal(rcv.hits(), 2)
    assert.equal(d.stats.delivered, 0)
    await d.close()
    await rcv.close()
  })

  it('does not follow a redirect, and does not retry it', async () => {
    const rcv = await startReceiver('x', { mode: 'redirect' })
    const d = new WebhookDispatcher([hook(rcv.url)], { allow: ['127.0.0.0/8'], timeout: 1000, maxAttempts: 5, backoff: 10, maxQueue: 10 }, logger)
    d.send('w', 'test', {})
    await eventually(async () => d.stats, (s) => s.gaveUp === 1, 'gave up')
    assert.equal(rcv.hits(), 1)
    await d.close()
    await rcv.close()
  })

  it('never contacts an address the config does not allow (a name resolving to loopback included), while an allowed one is delivered', async () => {
    const rcv = await startReceiver('whsec-0123456789abcdef')
    const port = new URL(rcv.url).port
    const denied = new WebhookDispatcher([hook(`http://localhost:${port}/hook`)], { allow: [], timeout: 1000, maxAttempts: 3, backoff: 10, maxQueue: 10 }, logger)
    denied.send('w', 'test', {})
    await eventually(async () => denied.stats, (s) => s.gaveUp === 1, 'gave up')
    assert.equal(rcv.hits(), 0)
    const allowed = new WebhookDispatcher([hook(`http://localhost:${port}/hook`)], { allow: ['127.0.0.0/8', '::1'], timeout: 1000, maxAttempts: 3, backoff: 10, maxQueue: 10 }, logger)
    allowed.send('w', 'test', { n: 1 })
    await eventually(async () => allowed.stats, (s) => s.delivered === 1, 'delivered')
    assert.equal(rcv.accepted[0]!.signatureValid, true)
    assert.deepEqual(rcv.accepted[0]!.body.data, { n: 1 })
    // A full queue drops (and counts) instead of growing without bound.
    const tiny = new WebhookDispatcher([hook(rcv.url)], { allow: ['127.0.0.0/8'], timeout: 1000, maxAttempts: 1, backoff: 10, maxQueue: 1 }, logger)
    tiny.send('w', 'a', {})
    tiny.send('w', 'b', {})
    assert.equal(tiny.stats.dropped, 1)
    await Promise.all([denied.close(), allowed.close(), tiny.close()])
    await rcv.close()
  })
})
