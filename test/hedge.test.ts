import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { z } from 'zod'
import type { RequestContext } from '../src/core/context.ts'
import { builtinPolicies } from '../src/policies/registry.ts'
import type { PolicyFactory } from '../src/policies/types.ts'
import { attemptsOf, type AttemptRecord } from '../src/upstream/attempts.ts'
import { startTestGateway, authHeaders, TEST_KEY } from './helpers/gateway.ts'
import { until } from './helpers/upstreams.ts'

const CONSUMERS = `
consumers:
  - id: team-a
    keys: [ { value: ${TEST_KEY} } ]
`

/** A test policy that hands each finished request's attempts to the test. */
function capturing(): { registry: ReturnType<typeof builtinPolicies>; seen: AttemptRecord[][] } {
  const seen: AttemptRecord[][] = []
  const factory: PolicyFactory<Record<string, never>> = {
    name: 'capture-attempts',
    schema: z.object({}).strict() as unknown as z.ZodType<Record<string, never>>,
    create: () => ({ name: 'capture-attempts', complete: (ctx: RequestContext) => { seen.push(attemptsOf(ctx).map((a) => ({ ...a }))) } }),
  }
  return { registry: new Map([...builtinPolicies(), ['capture-attempts', factory]]), seen }
}

async function post(url: string, body: Record<string, unknown>) {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: authHeaders(),
    body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'tell me something' }], max_tokens: 8, ...body }),
  })
  const text = await res.text()
  return { status: res.status, backend: res.headers.get('x-sluice-backend'), attempts: Number(res.headers.get('x-sluice-attempts')), text }
}

const yaml = (after: string, slow: string) => `
backends:
  - { id: slow, type: mock, ${slow} }
  - { id: fast, type: mock }
pools:
  - { id: gpt-4o, members: [ { backend: slow }, { backend: fast } ] }
models:
  - { name: gpt-4o, target: gpt-4o, hedge: { after: ${after}, max: 2 } }
policies:
  - capture-attempts: {}
${CONSUMERS}`

describe('hedged requests', () => {
  it('streams: a second attempt starts when the first has no token in time; the faster wins, the slower is cancelled and still accounted', async () => {
    const { registry, seen } = capturing()
    const t = await startTestGateway(yaml('100ms', 'ttft: 20s'), { registry })
    try {
      const r = await post(t.url, { stream: true })
      assert.equal(r.status, 200)
      assert.equal(r.backend, 'fast')
      assert.equal(r.attempts, 2)
      assert.ok(r.text.trim().endsWith('data: [DONE]'))
      assert.ok(!r.text.includes('"error"'))
      const slow = t.gw.mocks.server('slow')!.stats
      await until(() => slow.aborted === 1)
      assert.equal(slow.completionTokensSent, 0)
      await until(() => seen.length === 1)
      const [loser, winner] = seen[0]!
      assert.equal(loser!.backendId, 'slow')
      assert.equal(loser!.outcome, 'cancelled')
      // By hand (o200k_base): 'tell me something' = tell| me| something = 3, 'user' = 1; 3 framing + 3 priming: 10.
      assert.equal(loser!.promptTokens, 10, 'the cancelled attempt is charged its prompt')
      assert.equal(loser!.completionTokens, 0)
      assert.equal(winner!.backendId, 'fast')
      assert.equal(winner!.outcome, 'answered')
    } finally {
      await t.close()
    }
  })

  it('complete answers: the first full response wins', async () => {
    const { registry } = capturing()
    const t = await startTestGateway(yaml('100ms', 'latency: 20s'), { registry })
    try {
      const r = await post(t.url, {})
      assert.equal(r.status, 200)
      assert.equal(r.backend, 'fast')
      assert.equal(r.attempts, 2)
      await until(() => t.gw.mocks.server('slow')!.stats.aborted === 1)
    } finally {
      await t.close()
    }
  })

  it('does not hedge when the first attempt answers in time', async () => {
    const { registry } = capturing()
    const t = await startTestGateway(yaml('30s', ''), { registry })
    try {
      for (let i = 0; i < 4; i++) {
        const r = await post(t.url, { stream: i % 2 === 0 })
        assert.equal(r.status, 200)
        assert.equal(r.attempts, 1)
      }
      assert.equal(t.gw.mocks.server('slow')!.stats.aborted, 0)
      assert.equal(t.gw.mocks.server('fast')!.stats.aborted, 0)
    } finally {
      await t.close()
    }
  })

  it('a hedge that fails is replaced by failover while the first keeps running', async () => {
    const { registry } = capturing()
    const t = await startTestGateway(`
backends:
  - { id: slow, type: mock, ttft: 300ms }
  - { id: broken, type: mock, failRate: 1, failStatus: 500 }
  - { id: third, type: mock, ttft: 20s }
pools:
  - { id: gpt-4o, members: [ { backend: slow }, { backend: broken }, { backend: third } ] }
models:
  - { name: gpt-4o, target: gpt-4o, maxAttempts: 3, hedge: { after: 50ms, max: 2 } }
policies:
  - capture-attempts: {}
${CONSUMERS}`, { registry })
    try {
      const r = await post(t.url, { stream: true })
      assert.equal(r.status, 200)
      assert.equal(r.backend, 'slow')
      assert.equal(r.attempts, 3)
      await until(() => t.gw.mocks.server('third')!.stats.aborted === 1)
    } finally {
      await t.close()
    }
  })
})
