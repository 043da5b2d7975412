import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startTestGateway, type TestGateway } from './helpers/gateway.ts'
import { eventually } from './helpers/limits.ts'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const haveChromium = existsSync(CHROMIUM)
if (!haveChromium && process.env.CI === 'true') throw new Error(`headless Chromium is required under CI but ${CHROMIUM} is missing`)

const ADMIN_TOKEN = 'finops-dash-admin-token'
const KEY = 'sk-finops-dash-team-a'

async function chat(url: string, key: string) {
  const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', max_tokens: 30, messages: [{ role: 'user', content: 'How much have we spent?' }] }) })
  return { status: res.status, body: await res.json() as any }
}

describe('consumers, keys, budgets and audit pages in a real browser', { skip: !haveChromium }, () => {
  let g: TestGateway
  let dir: string

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-finops-dash-'))
    g = await startTestGateway(`
admin: { host: 127.0.0.1, port: 0, token: ${ADMIN_TOKEN} }
ledger: { type: sqlite, path: ${join(dir, 'ledger.db')}, flushInterval: 20ms }
pricing: { models: { gpt-4o-mini: { input: 2, output: 8 } } }
backends: [ { id: m, type: mock } ]
models: [ { name: gpt-4o-mini, target: m } ]
products:
  - id: metered
    policies: [ { budget: { usd: 0.01, period: monthly } } ]
consumers:
  - { id: team-a, product: metered, keys: [ { value: ${KEY} } ] }
`)
    for (let i = 0; i < 3; i++) assert.equal((await chat(g.url, KEY)).status, 200)
  })
  after(async () => {
    await g?.close()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('creates a consumer and a key, suspends and reinstates it, shows budgets and the audit log', { timeout: 90_000 }, async () => {
    const { chromium } = await import('playwright-core')
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] })
    try {
      const page = await browser.newPage({ viewport: { width: 1300, height: 900 } })
      const problems: string[] = []
      page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`))
      page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`) })
      page.on('dialog', (d) => void d.accept())
      const outside: string[] = []
      page.on('request', (r) => { if (!r.url().startsWith(g.adminUrl)) outside.push(r.url()) })

      await page.goto(`${g.adminUrl}/dashboard/finops.html#token=${ADMIN_TOKEN}`)
      await page.waitForSelector('body[data-loaded="true"][data-page="consumers"]')
      assert.ok(!page.url().includes(ADMIN_TOKEN), 'the token left the address bar')
      assert.equal(await page.locator('[data-consumer="team-a"] .tag').first().textContent(), 'config')

      // Bad input: the API's message is shown, nothing is created.
      await page.fill('#consumer-form [name="id"]', 'bad id')
      await page.click('#consumer-form button[type="submit"]')
      await page.waitForSelector('#notice[data-kind="error"]')
      assert.match((await page.locator('#notice').textContent()) ?? '', /consumer id/)
      // The browser logs the refused request itself; that one is expected.
      assert.deepEqual(problems.splice(0), ['console: Failed to load resource: the server responded with a status of 400 (Bad Request)'])

      await page.fill('#consumer-form [name="id"]', 'web-team')
      await page.selectOption('#consumer-form [name="product"]', 'metered')
      await page.fill('#consumer-form [name="metadata"]', 'team=web, cc=7')
      await page.click('#consumer-form button[type="submit"]')
      await page.waitForSelector('[data-consumer="web-team"]')
      const created = await (await fetch(`${g.adminUrl}/admin/consumers/web-team`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json() as any
      assert.deepEqual([created.source, created.product, created.metadata], ['api', 'metered', { team: 'web', cc: '7' }])

      // A key for it, made on the keys page and shown once.
      await page.click('[data-tab="keys"]')
      await page.waitForSelector('body[data-page="keys"]')
      await page.selectOption('#key-form [name="consumer"]', 'web-team')
      await page.fill('#key-form [name="label"]', 'from the browser')
      await page.click('#key-form button[type="submit"]')
      await page.waitForSelector('#new-key:not([hidden])')
      const key = /(sk-sluice-\S+)/.exec((await page.locator('#new-key').textContent()) ?? '')![1]!
      assert.equal((await chat(g.url, key)).status, 200)
      await page.waitForSelector('#keys-table [data-key] [data-state="active"]')

      // Suspend from the consumers page: the key is refused, then served again once reinstated.
      await page.click('[data-tab="consumers"]')
      await page.waitForSelector('[data-consumer="web-team"] [data-action="suspend"]')
      await page.click('[data-consumer="web-team"] [data-action="suspend"]')
      await page.waitForSelector('[data-consumer="web-team"] [data-state="suspended"]')
      const refused = await chat(g.url, key)
      assert.equal(refused.status, 403)
      assert.equal(refused.body.error.code, 'consumer_suspended')
      await page.click('[data-consumer="web-team"] [data-action="reinstate"]')
      await page.waitForSelector('[data-consumer="web-team"] [data-state="active"]')
      assert.equal((await chat(g.url, key)).status, 200)

      // Budgets: the spending the API reports, per counter.
      await page.click('[data-tab="budgets"]')
      await page.waitForSelector('body[data-page="budgets"] [data-budget="product:metered|team-a"]')
      const api = await (await fetch(`${g.adminUrl}/admin/budgets?consumer=team-a`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json() as any
      const usedText = await page.locator('[data-budget="product:metered|team-a"] [data-field="used"]').textContent()
      assert.equal(usedText, `$${api.budgets[0].usedUsd.toFixed(4)}`)
      assert.ok(api.budgets[0].usedUsd > 0)
      assert.equal(await page.locator('[data-budget="product:metered|web-team"]').count(), 1)

      // The audit log shows what was done, and by the dashboard.
      await page.click('[data-tab="audit"]')
      await page.waitForSelector('body[data-page="audit"] #audit-table [data-action="consumer.create"]')
      const actions = await page.locator('#audit-table tbody tr').evaluateAll((trs) => trs.map((t) => (t as HTMLElement).dataset.action))
      assert.deepEqual(actions, ['consumer.reinstate', 'consumer.suspend', 'key.create', 'consumer.create'])
      assert.equal(await page.locator('#audit-table tbody tr td:nth-child(2)').first().textContent(), 'dashboard')

      // Delete from the page.
      await page.click('[data-tab="consumers"]')
      await page.click('[data-consumer="web-team"] [data-action="delete"]')
      await eventually(() => page.locator('[data-consumer="web-team"]').count(), (n) => n === 0, 'row gone')
      assert.equal((await chat(g.url, key)).status, 401)

      mkdirSync('test-artifacts', { recursive: true })
      await page.screenshot({ path: 'test-artifacts/dashboard-finops.png', fullPage: true })
      assert.deepEqual(problems, [], 'no script errors or CSP violations')
      assert.deepEqual(outside, [], 'nothing is loaded from anywhere but the gateway')

      // The traffic dashboard links here.
      const home = await browser.newPage()
      await home.goto(`${g.adminUrl}/dashboard`)
      assert.equal(await home.locator('[data-link="finops"]').getAttribute('href'), '/dashboard/finops.html#consumers')
    } finally {
      await browser.close()
    }
  })
})
