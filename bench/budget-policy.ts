// CPU per request of the budget policy alone (inbound reserve + complete settle + the threshold peek), on
// the memory and Redis counter stores, in process: no HTTP, so the figure is the policy's own cost (the
// Redis round trips' client side included; the Redis server's CPU is not counted).
//   node --import tsx bench/budget-policy.ts [--requests N] [--concurrency C]
import { parseArgs } from 'node:util'
import { randomUUID } from 'node:crypto'
import pino from 'pino'
import { Redis } from 'ioredis'
import { createRequestContext } from '../src/core/context.ts'
import { systemClock } from '../src/core/clock.ts'
import { budgetPolicy } from '../src/policies/budget/index.ts'
import { tokenLimitPolicy } from '../src/policies/token-limit/index.ts'
import { MemoryCounterStore } from '../src/stores/memory/counter.ts'
import { RedisCounterStore } from '../src/stores/redis/counter.ts'
import { noopMetrics } from '../src/telemetry/sink.ts'
import { MemoryOnceStore } from '../src/finops/once.ts'
import { AlertSink } from '../src/finops/alerts.ts'
import { WebhookDispatcher } from '../src/finops/webhooks.ts'
import type { CounterStore } from '../src/stores/counter.ts'
import type { Policy } from '../src/core/pipeline.ts'

const { values } = parseArgs({ options: { requests: { type: 'string', default: '20000' }, concurrency: { type: 'string', default: '32' } } })
const N = Number(values.requests)
const C = Number(values.concurrency)
const logger = pino({ level: 'silent' })
const price = { input: 0.15, output: 0.6, cached: 0.075 }
const alerts = new AlertSink(new MemoryOnceStore(), new WebhookDispatcher([], { allow: [], timeout: 1000, maxAttempts: 1, backoff: 10, maxQueue: 10 }, logger), logger)

function deps(counters: CounterStore) {
  return {
    clock: systemClock, logger, metrics: noopMetrics, scope: { kind: 'global' as const }, prices: () => price, alerts,
    stores: { type: 'memory' as const, breakers: null as never, counters, redis: null, ping: async () => true, close: async () => {} },
  }
}

function request(i: number) {
  const ctx = createRequestContext({
    id: `r${i}`, startedAt: Date.now(), operation: 'chat.completions', info: { method: 'POST', path: '/v1/chat/completions', ip: '127.0.0.1', headers: {} },
    signal: new AbortController().signal, model: 'gpt-4o-mini', body: { model: 'gpt-4o-mini', max_tokens: 64, messages: [{ role: 'user', content: `Question number ${i % 50}: how are budgets enforced?` }] },
    stream: false, clientWantsStreamUsage: false,
  })
  ctx.principal = { consumerId: `team-${i % 8}`, productId: null, metadata: {} }
  ctx.backendId = 'fake'
  return ctx
}

const usage = { promptTokens: 18, completionTokens: 40, totalTokens: 58, cachedTokens: 6, reasoningTokens: 0 }

async function measure(name: string, policy: Policy): Promise<void> {
  const one = async (i: number) => {
    const ctx = request(i)
    await policy.inbound!(ctx)
    await policy.complete!(ctx, { status: 200, usage, error: null, aborted: false, endedAt: Date.now(), completionText: null, servedBy: null })
  }
  for (let i = 0; i < 2000; i++) await one(i) // warm-up (JIT, tokenizer)
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  let next = 0
  await Promise.all(Array.from({ length: C }, async () => { while (next < N) await one(next++) }))
  const cpu = process.cpuUsage(cpu0)
  const wall = performance.now() - t0
  console.log(`| ${name} | ${N} | ${((cpu.user + cpu.system) / N).toFixed(1)} | ${(N / (wall / 1000)).toFixed(0)} |`)
}

console.log('| policy / store | requests | CPU µs/req | req/s (this process) |')
console.log('|---|---|---|---|')
const mem = new MemoryCounterStore()
await measure('budget / memory', budgetPolicy.create(budgetPolicy.schema.parse({ usd: 1e9, period: 'monthly', alerts: [{ at: '80%' }] }), deps(mem) as never))
await measure('token-limit / memory', tokenLimitPolicy.create(tokenLimitPolicy.schema.parse({ tokensPerMinute: 1e12, tokenQuota: 1e15, tokenQuotaPeriod: 'monthly' }), deps(mem) as never))
const redis = new Redis('redis://127.0.0.1:6379', { lazyConnect: true })
await redis.connect()
const prefix = `sluice-bench-budget-${randomUUID().slice(0, 6)}:`
const rc = new RedisCounterStore(redis, prefix)
await measure('budget / redis', budgetPolicy.create(budgetPolicy.schema.parse({ usd: 1e9, period: 'monthly', alerts: [{ at: '80%' }] }), deps(rc) as never))
await measure('budget / redis, no alerts (no peek)', budgetPolicy.create(budgetPolicy.schema.parse({ usd: 1e9, period: 'monthly' }), deps(rc) as never))
await measure('token-limit / redis', tokenLimitPolicy.create(tokenLimitPolicy.schema.parse({ tokensPerMinute: 1e12, tokenQuota: 1e15, tokenQuotaPeriod: 'monthly' }), deps(rc) as never))
const keys = await redis.keys(`${prefix}*`)
if (keys.length) await redis.del(...keys)
await redis.quit()
