import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startTestGateway, type TestGateway } from './helpers/gateway.ts'
import { scrapeUntil, sumOf } from './helpers/prom.ts'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const haveChromium = existsSync(CHROMIUM)
if (!haveChromium && process.env.CI === 'true') throw new Error(`headless Chromium is required under CI but ${CHROMIUM} is missing (apt-get install -y chromium)`)
if (!haveChromium) process.stderr.write(`# ${CHROMIUM} not found: skipping the dashboard browser test (apt-get install -y chromium)\n`)

const ADMIN_TOKEN = 'dash-admin-token-7c1'
const KEY_A = 'sk-dash-team-a'
const KEY_B = 'sk-dash-team-b'

async function chat(url: string, key: string, model: string, stream: boolean, maxTokens: number): Promise<void> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, stream, max_tokens: maxTokens, messages: [{ role: 'user', content: `A question for ${model}` }] }),
  })
  await res.text()
}

describe('dashboard in a real browser', { skip: !haveChromium }, () => {
  let g: TestGateway
  let dir: string
  let sent = 0

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-dash-'))
    g = await startTestGateway(`
admin: { host: 127.0.0.1, port: 0, token: ${ADMIN_TOKEN} }
ledger: { type: sqlite, path: ${join(dir, 'ledger.db')} }
backends:
  - { id: openai-east, type: mock }
  - { id: openai-west, type: mock }
  - { id: flaky-backend, type: mock, failRate: 1, failStatus: 500, circuitBreaker: { failures: 1, tripDuration: 10m } }
models:
  - { name: gpt-4o-mini, target: openai-east }
  - { name: gpt-4o, target: openai-west }
  - { name: gpt-4o-flaky, target: flaky-backend, maxAttempts: 1 }
products:
  - { id: standard, models: [gpt-4o-mini, gpt-4o, gpt-4o-flaky] }
consumers:
  - { id: team-a, product: standard, keys: [ { value: ${KEY_A} } ] }
  - { id: team-b, product: standard, keys: [ { value: ${KEY_B} } ] }
policies:
  - emit-token-metric: { dimensions: { user: 'request.headers["x-user-id"]' } }
  - cache: { ttl: 1h }
`)
    const plan: Array<[string, string, boolean, number]> = [
      [KEY_A, 'gpt-4o-mini', false, 12], [KEY_A, 'gpt-4o-mini', true, 15], [KEY_A, 'gpt-4o', false, 8],
      [KEY_A, 'gpt-4o', true, 10], [KEY_B, 'gpt-4o', false, 6], [KEY_B, 'gpt-4o', true, 14], [KEY_B, 'gpt-4o-mini', false, 4],
    ]
    for (const [key, model, stream, n] of plan) {
      await chat(g.url, key, model, stream, n)
      sent++
    }
    await chat(g.url, KEY_A, 'gpt-4o-mini', false, 12) // the same question again: a cache hit
    sent++
    await chat(g.url, KEY_B, 'not-a-model', false, 4) // two errors: an unknown model, and a failing backend whose circuit opens
    await chat(g.url, KEY_B, 'gpt-4o-flaky', false, 4)
    sent += 1 // an unconfigured model makes no series (issue 10): only the failing backend's error is counted
    await scrapeUntil(g.adminUrl, (s) => sumOf(s, 'sluice_requests_total') >= sent, 5000, { authorization: `Bearer ${ADMIN_TOKEN}` })
  })
  after(async () => {
    await g?.close()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it('renders the charts from the traffic just sent, and saves a screenshot', async () => {
    const { chromium } = await import('playwright-core')
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    })
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } })
      const problems: string[] = []
      page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`))
      page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`) })
      const outside: string[] = []
      page.on('request', (r) => { if (!r.url().startsWith(g.adminUrl)) outside.push(r.url()) })

      await page.goto(`${g.adminUrl}/dashboard#token=${ADMIN_TOKEN}`)
      await page.waitForSelector('body[data-loaded="true"]', { timeout: 15_000 })
      assert.equal(new URL(page.url()).hash, '', 'the token left the address bar')

      const chart = (name: string) => page.locator(`[data-chart="${name}"]`)
      assert.equal(await chart('tokens-by-consumer').getAttribute('data-rendered'), 'true')
      assert.deepEqual((await chart('tokens-by-consumer').getAttribute('data-series'))!.split(',').sort(), ['team-a', 'team-b'])
      assert.ok(await chart('tokens-by-consumer').locator('svg rect[data-series]').count() >= 2)
      assert.deepEqual((await chart('tokens-by-model').getAttribute('data-series'))!.split(',').sort(), ['gpt-4o', 'gpt-4o-mini'])
      assert.equal(await chart('requests').getAttribute('data-rendered'), 'true')
      assert.equal(await chart('cache').getAttribute('data-rendered'), 'true')
      assert.match((await page.locator('[data-kpi="cache-hit-rate"] .value').textContent()) ?? '', /^\d+(\.\d)?%$/)
      assert.ok(await chart('requests').locator('rect[data-series="errors"]').count() >= 1, 'the error shows')
      assert.equal(await chart('top-consumers').getAttribute('data-rendered'), 'true')
      assert.deepEqual((await chart('top-consumers').getAttribute('data-series'))!.split(',').sort(), ['team-a', 'team-b'])
      assert.ok(['true', 'empty'].includes((await chart('cost-by-model').getAttribute('data-rendered')) ?? ''))
      // Savings over time: the one cache hit of the plan, on its day, at what the ledger says it saved.
      const ledger = (await (await fetch(`${g.adminUrl}/admin/usage?by=day`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { rows: Array<{ key: string; savedUsd: number; cacheHits: number }> }
      const hitDays = ledger.rows.filter((r) => r.cacheHits > 0)
      assert.equal(hitDays.reduce((a, r) => a + r.cacheHits, 0), 1)
      assert.ok(hitDays[0]!.savedUsd > 0, 'gpt-4o-mini has a shipped price, so its hit saved something')
      assert.equal(await chart('saved-by-day').getAttribute('data-rendered'), 'true')
      const bars = chart('saved-by-day').locator('svg rect[data-series]')
      assert.ok(await bars.count() >= 1)
      assert.equal(await chart('saved-by-day').locator(`svg rect[data-series="${hitDays[0]!.key}"]`).count(), 1)
      assert.match((await chart('saved-by-day').locator(`svg rect[data-series="${hitDays[0]!.key}"] title`).textContent()) ?? '', new RegExp(`^${hitDays[0]!.key}: \\$0\\.0*[1-9]`))
      assert.match((await page.locator('[data-kpi="saved"] .value').textContent()) ?? '', /^\$0\.0*[1-9]\d*$/)
      assert.match((await page.locator('[data-kpi-sub="saved"]').textContent()) ?? '', /^1 cache hit · /)
      assert.equal(await page.locator('[data-kpi="requests"] .value').textContent(), String(sent))
      assert.equal(await page.locator('[data-kpi="error-rate"] .value').textContent(), `${((1 / sent) * 100).toFixed(1)}%`)
      assert.equal(await page.locator('.backend.closed').count(), 2)
      assert.equal(await page.locator('.backend.open').getAttribute('data-backend'), 'flaky-backend')
      assert.deepEqual(await page.locator('.backend').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.backend).sort()), ['flaky-backend', 'openai-east', 'openai-west'])

      mkdirSync('test-artifacts', { recursive: true })
      await page.screenshot({ path: 'test-artifacts/dashboard.png', fullPage: true })
      assert.deepEqual(problems, [], 'no script errors or CSP violations')
      assert.deepEqual(outside, [], 'nothing is loaded from anywhere but the gateway')

      // A tab without the token gets the login form, then the dashboard once the token is given.
      const fresh = await browser.newPage({ viewport: { width: 1200, height: 900 } })
      await fresh.goto(`${g.adminUrl}/dashboard`)
      await fresh.waitForSelector('#login:not([hidden])', { timeout: 10_000 })
      await fresh.fill('#login-token', ADMIN_TOKEN)
      await fresh.click('#login-form button[type="submit"]')
      await fresh.waitForSelector('body[data-loaded="true"]', { timeout: 10_000 })
      assert.equal(await fresh.locator('#login').isHidden(), true)
    } finally {
      await browser.close()
    }
  })
})
