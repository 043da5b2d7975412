import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { TEST_KEY, serviceAvailable } from './helpers/gateway.ts'
import { freePort, spawnGateway, type GatewayProcess } from './helpers/process.ts'
import { chat } from './helpers/limits.ts'

const TPM = 3000
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

async function startFleet(count: number, store: string): Promise<string[]> {
  const urls: string[] = []
  for (let i = 0; i < count; i++) {
    const port = await freePort()
    const file = join(dir, `gw-${randomUUID().slice(0, 8)}.yaml`)
    writeFileSync(file, `
listen: { host: 127.0.0.1, port: ${port} }
admin: { enabled: false }
ledger: { type: none }
logging: { level: warn }
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
    const p = await spawnGateway(file, port)
    running.push(p)
    urls.push(p.url)
  }
  return urls
}

/** Many concurrent clients spread over the gateways; returns the tokens admitted and the refusals. */
async function storm(urls: string[], requests: number) {
  const answers = await Promise.all(Array.from({ length: requests }, (_, i) => {
    // A mix: explicit caps (charged exactly) and no cap (reserved at the default, refunded to 16).
    const body = i % 3 === 0 ? {} : { max_tokens: 20 + (i % 7) * 10 }
    return chat(urls[i % urls.length]!, body)
  }))
  const admitted = answers.filter((a) => a.status === 200).reduce((sum, a) => sum + (a.body.usage.total_tokens as number), 0)
  const refused = answers.filter((a) => a.status === 429)
  const other = answers.filter((a) => a.status !== 200 && a.status !== 429)
  return { admitted, refused, other, ok: answers.length - refused.length - other.length }
}

function checkStorm(r: Awaited<ReturnType<typeof storm>>): void {
  assert.equal(r.other.length, 0, JSON.stringify(r.other.map((a) => [a.status, a.body])))
  // The mock counts prompts exactly as the gateway estimates them, so the estimate error is zero here.
  assert.ok(r.admitted <= TPM, `admitted ${r.admitted} tokens, limit ${TPM}`)
  assert.ok(r.ok > 0 && r.refused.length > 0, `ok ${r.ok}, refused ${r.refused.length}`)
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
  it('three gateway processes sharing Redis never admit more than the limit', { skip: !redisUp, timeout: 60_000 }, async () => {
    const urls = await startFleet(3, `{ type: redis, url: "redis://127.0.0.1:6379", keyPrefix: "${prefix}", commandTimeout: 10s }`)
    const r = await storm(urls, 150)
    // A fallback to per-process counters (Redis too slow for commandTimeout) would void the test: say so.
    const fellBack = running.filter((p) => p.output().includes('counter store is unreachable'))
    assert.equal(fellBack.length, 0, `Redis did not answer in time:\n${fellBack.map((p) => p.output()).join('\n')}`)
    checkStorm(r)
  })

  it('one process with the memory store never admits more than the limit', { timeout: 60_000 }, async () => {
    const urls = await startFleet(1, '{ type: memory }')
    checkStorm(await storm(urls, 120))
  })
})
