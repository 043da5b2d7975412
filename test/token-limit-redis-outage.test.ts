import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { RedisCounterStore } from '../src/stores/redis/counter.ts'
import { noopMetrics, type MetricsSink } from '../src/telemetry/sink.ts'
import { BASIC_YAML, serviceAvailable, startTestGateway, type TestGateway } from './helpers/gateway.ts'
import { chat } from './helpers/limits.ts'
import { TcpProxy } from './helpers/tcp-proxy.ts'

const redisUp = await serviceAvailable('redis')
const prefix = `sluice-outage-${randomUUID().slice(0, 8)}:`
const WINDOW = [{ kind: 'sliding' as const, name: 'tpm', limit: 1_000_000, windowMs: 60_000 }]

async function until(what: string, check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`${what}: not within ${ms} ms`)
}

describe('token limits while Redis is unreachable (store.onFailure)', { skip: !redisUp }, () => {
  const proxy = new TcpProxy(6379)
  const gateways: TestGateway[] = []
  let direct: Redis | null = null
  after(async () => {
    for (const g of gateways) await g.close()
    await proxy.stop()
    if (direct) {
      const keys = await direct.keys(`${prefix}*`)
      if (keys.length) await direct.del(...keys)
      await direct.quit()
    }
  })

  it('serves under open, refuses with 503 under closed, and recovers by itself', { timeout: 60_000 }, async () => {
    const port = await proxy.start()
    direct = new Redis('redis://127.0.0.1:6379')
    const events: string[] = []
    const metrics: MetricsSink = { ...noopMetrics, storeFailure: (s, a) => { events.push(`${s}:${a}`) } }
    const start = async (mode: 'open' | 'closed', consumerKey: string) => {
      const g = await startTestGateway(`${BASIC_YAML}
store: { type: redis, url: "redis://127.0.0.1:${port}", keyPrefix: "${prefix}", commandTimeout: 2s, onFailure: ${mode} }
policies:
  - token-limit: { counterKey: '"${consumerKey}"', tokensPerMinute: 1000000 }
`, { metrics })
      gateways.push(g)
      return g
    }
    const open = await start('open', 'outage-open')
    const closed = await start('closed', 'outage-closed')
    const counted = async (key: string) => {
      const [, h] = new RedisCounterStore(direct!, prefix).keysOf(`tokens:${key}`, WINDOW)
      return Number((await direct!.hget(h!, '#')) ?? 0)
    }

    // Healthy: both count in Redis.
    assert.equal((await chat(open.url, { max_tokens: 10 })).status, 200)
    assert.equal((await chat(closed.url, { max_tokens: 10 })).status, 200)
    await until('settled in Redis', async () => (await counted('outage-open')) > 0 && (await counted('outage-closed')) > 0)
    const before = await counted('outage-open')
    assert.equal((await fetch(`${open.url}/readyz`)).status, 200)

    // Outage.
    await proxy.stop()
    for (let i = 0; i < 3; i++) {
      const a = await chat(open.url, { max_tokens: 10 })
      assert.equal(a.status, 200, 'open: keeps serving on the local counter')
      assert.ok(a.headers.get('x-ratelimit-remaining-tokens'))
      const b = await chat(closed.url, { max_tokens: 10 })
      assert.equal(b.status, 503, 'closed: refuses')
      assert.equal(b.body.error.code, 'service_unavailable')
      assert.doesNotMatch(JSON.stringify(b.body), /redis:\/\/|6379|at .*\.ts/)
    }
    assert.ok(events.includes('redis:fallback') && events.includes('redis:refused'), events.join(','))
    const ready = await fetch(`${open.url}/readyz`)
    assert.equal(ready.status, 503)
    assert.equal((await ready.json() as { stores: string }).stores, 'down')

    // Redis returns: both gateways go back to it without a restart.
    await proxy.start()
    await until('closed mode serves again', async () => (await chat(closed.url, { max_tokens: 10 })).status === 200)
    await until('open mode counts in Redis again', async () => {
      assert.equal((await chat(open.url, { max_tokens: 10 })).status, 200)
      return (await counted('outage-open')) > before
    })
    await until('ready again', async () => (await fetch(`${open.url}/readyz`)).status === 200)
  })
})
