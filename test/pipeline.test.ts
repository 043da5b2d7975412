import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { z } from 'zod'
import { request } from 'undici'
import type { RequestContext } from '../src/core/context.ts'
import { GatewayError, GW_ERR } from '../src/core/errors.ts'
import type { Outcome, Policy } from '../src/core/pipeline.ts'
import { builtinPolicies } from '../src/policies/registry.ts'
import { registryOf, type PolicyFactory } from '../src/policies/types.ts'
import { authHeaders, startTestGateway, TEST_KEY, TEST_KEY_B, type TestGateway } from './helpers/gateway.ts'

// A probe policy: records every stage it sees into a shared journal, and can refuse, answer or rewrite.
const journal: string[] = []
const outcomes: Array<{ tag: string; outcome: Outcome; consumer: string | null }> = []

const probe: PolicyFactory<{ tag: string; refuse?: boolean; answer?: boolean; upper?: boolean }> = {
  name: 'probe',
  schema: z.strictObject({ tag: z.string(), refuse: z.boolean().optional(), answer: z.boolean().optional(), upper: z.boolean().optional() }),
  create(cfg, deps) {
    const p: Policy = {
      name: `probe:${cfg.tag}`,
      inbound(ctx: RequestContext) {
        journal.push(`in:${cfg.tag}:${deps.scope.kind}`)
        ctx.responseHeaders[`x-probe-${cfg.tag}`] = 'seen'
        if (cfg.refuse) throw new GatewayError(GW_ERR.CONTENT_FILTER, `blocked by ${cfg.tag}`)
        if (cfg.answer) {
          return { kind: 'json', status: 200, headers: { 'x-sluice-served-by': `probe:${cfg.tag}` }, body: { object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'from policy' }, finish_reason: 'stop' }] }, text: null }
        }
      },
      backend(next) {
        return async (ctx) => {
          journal.push(`backend>:${cfg.tag}`)
          const r = await next(ctx)
          journal.push(`backend<:${cfg.tag}`)
          return r
        }
      },
      outboundResponse(_ctx, res) {
        journal.push(`out:${cfg.tag}`)
        if (cfg.upper) {
          const msg = (res.body.choices as Array<{ message: { content: string } }>)[0]!.message
          msg.content = msg.content.toUpperCase()
          res.modified = true
        }
      },
      outboundChunk(_ctx, chunk) {
        if (cfg.upper && chunk.json) {
          const delta = (chunk.json.choices as Array<{ delta?: { content?: string } }> | undefined)?.[0]?.delta
          if (delta?.content) { delta.content = delta.content.toUpperCase(); chunk.modified = true }
        }
        return true
      },
      complete(ctx, outcome) {
        outcomes.push({ tag: cfg.tag, outcome, consumer: ctx.principal?.consumerId ?? null })
      },
    }
    return p
  },
}

const registry = registryOf([...builtinPolicies().values(), probe])

const YAML = `
backends:
  - { id: m, type: mock }
models:
  - { name: gpt-4o-mini, target: m }
policies:
  - probe: { tag: g1 }
  - probe: { tag: g2 }
products:
  - id: upper
    policies:
      - probe: { tag: p1, upper: true }
  - id: blocked
    policies:
      - probe: { tag: p2, refuse: true }
  - id: answered
    policies:
      - probe: { tag: p3, answer: true }
consumers:
  - { id: a, product: upper, keys: [ { value: ${TEST_KEY} } ] }
  - { id: b, product: blocked, keys: [ { value: ${TEST_KEY_B} } ] }
  - { id: c, product: answered, keys: [ { value: sk-test-key-team-c } ] }
`

let tg: TestGateway
before(async () => { tg = await startTestGateway(YAML, { registry }) })
after(() => tg.close())

const body = (stream = false) => JSON.stringify({ model: 'gpt-4o-mini', stream, messages: [{ role: 'user', content: 'hi' }] })
const waitFor = async (cond: () => boolean) => {
  for (let i = 0; i < 300 && !cond(); i++) await new Promise((r) => setTimeout(r, 10))
  assert.ok(cond(), 'condition not met within 3 s')
}

test('stages run in order: inbound global→product, backend wraps outer→inner, outbound in reverse, complete after', async () => {
  journal.length = 0
  outcomes.length = 0
  const res = await request(`${tg.url}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body: body() })
  const json = (await res.body.json()) as { choices: Array<{ message: { content: string } }> }
  assert.equal(res.statusCode, 200)
  assert.deepEqual(journal, [
    'in:g1:global', 'in:g2:global', 'in:p1:product',
    'backend>:g1', 'backend>:g2', 'backend>:p1', 'backend<:p1', 'backend<:g2', 'backend<:g1',
    'out:p1', 'out:g2', 'out:g1',
  ])
  assert.equal(json.choices[0]!.message.content, json.choices[0]!.message.content.toUpperCase(), 'an outbound policy rewrote the answer')
  assert.equal(res.headers['x-probe-g1'], 'seen')
  await waitFor(() => outcomes.length === 3)
  assert.deepEqual(outcomes.map((o) => o.tag), ['g1', 'g2', 'p1'])
  assert.equal(outcomes[0]!.outcome.status, 200)
  assert.equal(outcomes[0]!.outcome.usage!.completionTokens, 16) // the mock's default length
  assert.equal(outcomes[0]!.consumer, 'a')
})

test('outbound chunk hooks see and may edit every streamed event', async () => {
  outcomes.length = 0
  const res = await request(`${tg.url}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body: body(true) })
  const text = await res.body.text()
  const content = text.split('\n\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)).choices[0]?.delta?.content ?? '').join('')
  assert.ok(content.length > 0)
  assert.equal(content, content.toUpperCase())
  await waitFor(() => outcomes.length === 3)
  assert.equal(outcomes[0]!.outcome.usage!.completionTokens, 16, 'complete sees the stream usage')
})

test('an inbound refusal stops the request before the backend, and complete still runs', async () => {
  journal.length = 0
  outcomes.length = 0
  const res = await request(`${tg.url}/v1/chat/completions`, { method: 'POST', headers: authHeaders(TEST_KEY_B), body: body() })
  const json = (await res.body.json()) as { error: { code: string } }
  assert.equal(res.statusCode, 400)
  assert.equal(json.error.code, 'content_filter')
  assert.ok(!journal.some((j) => j.startsWith('backend')))
  await waitFor(() => outcomes.length === 3)
  assert.equal(outcomes[0]!.outcome.error?.code, 'content_filter')
})

test('an inbound policy may answer instead of the backend; outbound still runs', async () => {
  journal.length = 0
  outcomes.length = 0
  const res = await request(`${tg.url}/v1/chat/completions`, { method: 'POST', headers: authHeaders('sk-test-key-team-c'), body: body() })
  const json = (await res.body.json()) as { choices: Array<{ message: { content: string } }> }
  assert.equal(json.choices[0]!.message.content, 'from policy')
  assert.ok(!journal.some((j) => j.startsWith('backend')))
  assert.deepEqual(journal.filter((j) => j.startsWith('out')), ['out:p3', 'out:g2', 'out:g1'])
  assert.equal(res.headers['x-sluice-backend'], undefined)
  await waitFor(() => outcomes.length === 3)
  assert.equal(outcomes[0]!.outcome.servedBy, 'probe:p3')
})
