import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { TEST_KEY, serviceAvailable } from './helpers/gateway.ts'
import { spawnGateway, type GatewayProcess } from './helpers/process.ts'
import { chat } from './helpers/limits.ts'

const TPM = 3000
const ADMIN_TOKEN = 'test-admin-token-multiprocess'
// The figures the test expects, derived by hand (not by src/): every request sends the one message
// { role: 'user', content: 'Say hello.' }. In o200k_base (gpt-4o-mini's encoding; checked with gpt-tokenizer's
// encode) 'user' is 1 token and 'Say hello.' is Say| hello|. = 3; OpenAI's chat accounting adds 3 per message and
// 3 priming the reply: prompt = 3 + 3 + 1 + 3 = 10. The mock writes max_tokens tokens (16 when none is given).
const PROMPT = 10
const PER_REQUEST = PROMPT + 16 // = 26: with max_tokens: 16 the reservation (10 + 16) equals the charge exactly
const DEFAULT_RESERVATION = PROMPT + 256 // no max_tokens: the policy reserves its defaultCompletionTokens (256)
const WARMUP = 10 // 10 x 266 = 2660 <= 3000: all admitted whatever the interleaving, then refunded to 10 x 26 = 260
// After the warm-up 3000 - 260 = 2740 tokens are free; each storm request reserves and is charged exactly 26, so
// exactly floor(2740 / 26) = 105 are admitted (105 x 26 = 2730; the 10 left cannot hold another) and the rest refused.
const STORM_ADMITTED = 105
const EXPECTED_TOTAL = WARMUP * PER_REQUEST + STORM_ADMITTED * PER_REQUEST // = 2990, within one request (26) of TPM

const redisUp = await serviceAvailable('redis')
const dir = mkdtempSync(join(tmpdir(), 'sluice-limits-'))
const prefix = `sluice-mp-${randomUUID().slice(0, 8)}:`
const running: GatewayProcess[] = []
after(async () => {
  for (const p of running) if (p.child.exitCode === null) p.child.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
  if (redisUp) {
    const r = new Redis('redis://127.0.0.1:6379', { lazyConnect: true })
    await r.connect()
    const keys = await r.keys(`${prefix}*`)
    if (keys.length) await r.del(...keys)
    await r.quit()
  }
})

async function startFleet(count: number, store: string): Promise<{ urls: string[]; adminUrl: string }> {
  const urls: string[] = []
  let adminUrl = ''
  for (let i = 0; i < count; i++) {
    const file = join(dir, `gw-${randomUUID().slice(0, 8)}.yaml`)
    // The first process has an admin plane, to read the shared counter; the others have none.
    writeFileSync(file, `
listen: { host: 127.0.0.1, port: 0 }
admin: ${i === 0 ? `{ host: 127.0.0.1, port: 0, token: ${ADMIN_TOKEN} }` : '{ enabled: false }'}
ledger: { type: none }
logging: { level: warn }
# The storm puts up to 120 requests of one consumer in flight in one process: above the default in-flight cap
# (100), whose 429 too_many_concurrent_requests would be taken for token-limit refusals on a slow machine.
requestLimits: { maxInflightPerConsumer: 1000 }
store: ${store}
backends:
  - { id: mock-a, type: mock, completionTokens: 16, latency: 5ms }
models:
  - { name: gpt-4o-mini, target: mock-a }
consumers:
  - id: team-a
    keys: [ { value: ${TEST_KEY} } ]
policies:
  - token-limit: { counterKey: consumer.id, tokensPerMinute: ${TPM} }
`)
    const p = await spawnGateway(file)
    running.push(p)
    urls.push(p.url)
    if (i === 0) adminUrl = p.adminUrl
  }
  assert.ok(adminUrl, 'the first process serves the admin plane')
  return { urls, adminUrl }
}

async function usedTokens(adminUrl: string): Promise<number> {
  const res = await fetch(`${adminUrl}/admin/limits?key=team-a`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
  assert.equal(res.status, 200)
  const v = (await res.json()) as { limits: Array<{ windows: Array<{ used: number }> }> }
  return v.limits[0]!.windows[0]!.used
}

async function waitForUsed(adminUrl: string, expected: number): Promise<void> {
  let used = -1
  for (let i = 0; i < 250; i++) {
    used = await usedTokens(adminUrl)
    if (used === expected) return
    await new Promise((r) => setTimeout(r, 20))
  }
  assert.fail(`the shared counter never read ${expected} tokens; last ${used}`)
}

/** Many concurrent clients spread over the gateways; returns what was admitted and refused. */
async function storm(urls: string[], requests: number, body: Record<string, unknown>) {
  const answers = await Promise.all(Array.from({ length: requests }, (_, i) => chat(urls[i % urls.length]!, body)))
  const ok = answers.filter((a) => a.status === 200)
  const refused = answers.filter((a) => a.status === 429)
  const other = answers.filter((a) => a.status !== 200 && a.status !== 429)
  return { ok, refused, other }
}

/**
 * A warm-up whose reservations are refunded, then a storm whose every request costs exactly PER_REQUEST: the
 * admitted total is then known to the token, and checked from both sides (no over-admission, no under-admission).
 */
async function checkExactAdmission(urls: string[], adminUrl: string, requests: number): Promise<void> {
  const warm = await storm(urls, WARMUP, {})
  assert.equal(warm.ok.length, WARMUP, JSON.stringify([...warm.refused, ...warm.other].map((a) => [a.status, a.body])))
  for (const a of warm.ok) assert.equal(a.body.usage.total_tokens, PER_REQUEST)
  // Each warm-up request reserved DEFAULT_RESERVATION and settled to PER_REQUEST: without refunds the counter would
  // stay at 2660 and the storm below would get 13 requests in, not 105.
  await waitForUsed(adminUrl, WARMUP * PER_REQUEST)
  assert.ok(WARMUP * DEFAULT_RESERVATION <= TPM)

  const r = await storm(urls, requests, { max_tokens: 16 })
  assert.equal(r.other.length, 0, JSON.stringify(r.other.map((a) => [a.status, a.body])))
  for (const a of r.ok) assert.equal(a.body.usage.total_tokens, PER_REQUEST, 'the backend charged the hand-derived figure')
  // Every refusal is the token limit's (not another 429 such as the in-flight cap), so the counts below are its.
  assert.deepEqual([...new Set(r.refused.map((a) => a.body.error.code))].filter((c) => c !== 'rate_limit_exceeded'), [])
  assert.equal(r.ok.length, STORM_ADMITTED, `admitted ${r.ok.length} storm requests, expected exactly ${STORM_ADMITTED}`)
  assert.equal(r.refused.length, requests - STORM_ADMITTED)
  const admitted = WARMUP * PER_REQUEST + r.ok.length * PER_REQUEST
  assert.equal(admitted, EXPECTED_TOTAL)
  assert.ok(admitted <= TPM && admitted > TPM - PER_REQUEST, `admitted ${admitted} tokens, limit ${TPM}`)
  await waitForUsed(adminUrl, EXPECTED_TOTAL) // refusals left nothing behind
  for (const a of r.refused) {
    assert.equal(a.body.error.code, 'rate_limit_exceeded')
    const ms = Number(a.headers.get('retry-after-ms'))
    const s = Number(a.headers.get('retry-after'))
    assert.ok(ms > 0 && ms <= 60_000, `retry-after-ms ${ms}`)
    assert.equal(s, Math.ceil(ms / 1000))
    assert.equal(a.headers.get('x-ratelimit-limit-tokens'), String(TPM))
  }
}

describe('token limits across processes', () => {
  it('three gateway processes sharing Redis admit exactly what the limit holds', { skip: !redisUp, timeout: 180_000 }, async () => {
    const { urls, adminUrl } = await startFleet(3, `{ type: redis, url: "redis://127.0.0.1:6379", keyPrefix: "${prefix}", commandTimeout: 10s }`)
    await checkExactAdmission(urls, adminUrl, 150)
    // A fallback to per-process counters (Redis too slow for commandTimeout) would void the test: say so.
    const fellBack = running.filter((p) => p.output().includes('counter store is unreachable'))
    assert.equal(fellBack.length, 0, `Redis did not answer in time:\n${fellBack.map((p) => p.output()).join('\n')}`)
  })

  it('one process with the memory store admits exactly what the limit holds', { timeout: 120_000 }, async () => {
    const { urls, adminUrl } = await startFleet(1, '{ type: memory }')
    await checkExactAdmission(urls, adminUrl, 120)
  })
})
