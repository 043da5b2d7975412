import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import pino from 'pino'
import { AnswerCapture, answerAsStream } from '../src/cache/answer.ts'
import { CACHE_HIT, cacheHitOf } from '../src/cache/hit.ts'
import { ManualClock } from '../src/core/clock.ts'
import type { RequestContext } from '../src/core/context.ts'
import type { JsonResult, Outcome, UpstreamResult } from '../src/core/pipeline.ts'
import { exactCachePolicy } from '../src/policies/cache/index.ts'
import { semanticCachePolicy } from '../src/policies/semantic-cache/index.ts'
import type { PolicyDeps } from '../src/policies/types.ts'
import type { Stores } from '../src/stores/types.ts'
import { noopMetrics } from '../src/telemetry/sink.ts'

const clock = new ManualClock()
function deps(): PolicyDeps {
  return { clock, logger: pino({ level: 'silent' }), stores: {} as Stores, metrics: noopMetrics, scope: { kind: 'global' } }
}
function ctx(body: Record<string, unknown>): RequestContext {
  const signal = new AbortController().signal
  return {
    id: 'r1', startedAt: clock.now(), operation: 'chat.completions', info: { method: 'POST', path: '/v1/chat/completions', ip: '127.0.0.1', headers: {} },
    cancel: signal, signal, principal: { consumerId: 'c', productId: 'p', metadata: {} }, model: 'gpt-4o-mini', body, stream: false,
    clientWantsStreamUsage: false, usage: null, backendId: null, attempts: 0, firstTokenAt: null, responseHeaders: {}, slots: new Map(),
  }
}
const USAGE = { promptTokens: 5, completionTokens: 3, totalTokens: 8, cachedTokens: 0, reasoningTokens: 0 }
const ok: Outcome = { status: 200, usage: USAGE, error: null, aborted: false, endedAt: 0, completionText: null, servedBy: null }
const jsonRes = (message: Record<string, unknown>, status = 200): JsonResult => ({ kind: 'json', status, headers: {}, text: null, body: { object: 'chat.completion', model: 'gpt-4o-mini', choices: [{ index: 0, message, finish_reason: 'stop' }] } })
const BODY = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi there' }] }

/** One request through the policy's hooks: inbound, then (on a miss) the backend answer and complete. */
async function roundTrip(policy: ReturnType<typeof exactCachePolicy.create>, res: JsonResult, outcome: Outcome = ok): Promise<UpstreamResult | void> {
  const c = ctx(BODY)
  const r = await policy.inbound!(c)
  if (r) return r
  policy.outboundResponse!(c, res)
  await policy.complete!(c, outcome)
}

describe('cache policy rules', () => {
  it('never stores errors or answers cut short', async () => {
    const p = exactCachePolicy.create(exactCachePolicy.schema.parse({ ttl: '1h' }), deps())
    const err = { ...ok, status: 502, error: new Error('x') as never }
    await roundTrip(p, jsonRes({ role: 'assistant', content: 'x' }), err)
    await roundTrip(p, jsonRes({ role: 'assistant', content: 'x' }), { ...ok, aborted: true })
    await roundTrip(p, jsonRes({ role: 'assistant', content: 'x' }, 500))
    const c = ctx(BODY)
    assert.equal(await p.inbound!(c), undefined)
    assert.equal(c.responseHeaders['x-sluice-cache'], 'miss')
  })

  it('does not store tool-call answers unless cacheToolCalls is on', async () => {
    const call = { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{}' } }] }
    const off = exactCachePolicy.create(exactCachePolicy.schema.parse({ ttl: '1h' }), deps())
    await roundTrip(off, jsonRes(call))
    assert.equal(await roundTrip(off, jsonRes(call)), undefined)
    const on = exactCachePolicy.create(exactCachePolicy.schema.parse({ ttl: '1h', cacheToolCalls: true }), deps())
    await roundTrip(on, jsonRes(call))
    const hit = (await roundTrip(on, jsonRes(call))) as JsonResult
    assert.equal(hit.kind, 'json')
    assert.deepEqual((hit.body.choices as any)[0].message.tool_calls, call.tool_calls)
  })

  it('marks a hit on ctx for token limits (countHits) with the cached usage', async () => {
    const p = exactCachePolicy.create(exactCachePolicy.schema.parse({ ttl: '1h', countHits: false }), deps())
    await roundTrip(p, jsonRes({ role: 'assistant', content: 'hello' }))
    const c = ctx(BODY)
    const r = (await p.inbound!(c)) as JsonResult
    assert.equal(r.headers['x-sluice-served-by'], 'cache:exact')
    assert.deepEqual(cacheHitOf(c), { policy: 'cache', kind: 'exact', countHits: false, usage: USAGE, distance: null })
    assert.ok(c.slots.has(CACHE_HIT))
    assert.equal((r.body.usage as any).total_tokens, 8)
  })

  it('bypasses n > 1 and other operations', async () => {
    const p = exactCachePolicy.create(exactCachePolicy.schema.parse({ ttl: '1h' }), deps())
    const c = ctx({ ...BODY, n: 2 })
    assert.equal(await p.inbound!(c), undefined)
    assert.equal(c.slots.size, 0)
  })

  it('captures a streamed answer with tool calls only when allowed, and only once finished', () => {
    const chunk = (delta: unknown, finish: string | null = null) => ({ frame: { event: undefined, data: '', raw: '' }, modified: false, json: { model: 'm', choices: [{ index: 0, delta, finish_reason: finish }] } })
    const cap = new AnswerCapture()
    cap.onChunk(chunk({ role: 'assistant', content: 'Hel' }))
    cap.onChunk(chunk({ content: 'lo' }))
    assert.equal(cap.result({ cacheToolCalls: false }, USAGE, 0, 'm'), null, 'no finish_reason yet')
    cap.onChunk(chunk({}, 'stop'))
    assert.equal(cap.result({ cacheToolCalls: false }, USAGE, 0, 'm')!.content, 'Hello')
    const tools = new AnswerCapture()
    tools.onChunk(chunk({ tool_calls: [{ index: 0, id: 'c1', type: 'function', function: { name: 'get', arguments: '{"a"' } }] }))
    tools.onChunk(chunk({ tool_calls: [{ index: 0, function: { arguments: ':1}' } }] }, 'tool_calls'))
    assert.equal(tools.result({ cacheToolCalls: false }, USAGE, 0, 'm'), null)
    assert.deepEqual(tools.result({ cacheToolCalls: true }, USAGE, 0, 'm')!.toolCalls, [{ id: 'c1', type: 'function', function: { name: 'get', arguments: '{"a":1}' } }])
  })

  it('replays a cached answer as role, content, finish, usage chunks then [DONE]', async () => {
    const s = answerAsStream({ v: 1, model: 'm', content: 'one two three four five six seven eight nine ten eleven twelve', refusal: null, toolCalls: null, finishReason: 'stop', usage: USAGE, systemFingerprint: null, storedAt: 0 }, 0, {})
    const frames = []
    for await (const f of s.frames) frames.push(f)
    assert.equal(frames.at(-1)!.raw, 'data: [DONE]\n\n')
    const json = frames.slice(0, -1).map((f) => JSON.parse(f.data))
    assert.equal(json[0].choices[0].delta.role, 'assistant')
    assert.equal(json.map((j) => j.choices[0]?.delta?.content ?? '').join(''), 'one two three four five six seven eight nine ten eleven twelve')
    assert.equal(json.at(-2).choices[0].finish_reason, 'stop')
    assert.deepEqual(json.at(-1).choices, [])
    assert.equal(json.at(-1).usage.total_tokens, 8)
    for (const f of frames) assert.ok(f.raw.endsWith('\n\n') && f.raw.startsWith('data: '))
  })
})

describe('semantic-cache options', () => {
  it('refuses store: redis and postgres without a url with clear messages; defaults are safe', () => {
    const bad = semanticCachePolicy.schema.safeParse({ embeddings: { local: 'use-lite' }, ttl: '1h', store: 'redis' })
    assert.equal(bad.success, false)
    assert.match(JSON.stringify(bad.error!.issues), /Redis vector search/)
    const noUrl = semanticCachePolicy.schema.safeParse({ embeddings: { local: 'use-lite' }, ttl: '1h', store: 'postgres' })
    assert.equal(noUrl.success, false)
    const d = semanticCachePolicy.schema.parse({ embeddings: { backend: 'b', model: 'm' }, ttl: '1h' })
    assert.equal(d.guard, true)
    assert.equal(d.scoreThreshold, 0.25)
    assert.deepEqual(d.varyBy, ['consumer.product'])
    assert.equal(d.countHits, true)
  })
})
