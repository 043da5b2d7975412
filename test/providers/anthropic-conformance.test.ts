import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { startMockServer, type MockServer } from '../../src/mock/llm.ts'
import { SLUICE_KEY, startLedgeredGateway } from '../helpers/providers.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import type { UsageRecord } from '../../src/stores/ledger.ts'

/**
 * The pairs of the Anthropic work, through the official SDKs: Anthropic SDK → Sluice → {mock OpenAI, mock Anthropic
 * (same schema: passthrough)}, OpenAI SDK → Sluice → mock Anthropic (translated), with OpenAI SDK → mock OpenAI as
 * the untranslated baseline. Expected figures come from the mocks called directly (what the backend reports), never
 * from the gateway's code.
 */
const UPSTREAM_KEY = 'sk-ant-upstream-only'
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=='
const SYSTEM = 'You answer briefly.'
const ARGS = { city: 'Paris, France', unit: 'celsius', days: 3, detail: 'hourly forecast please' }
const MARKED = `Weather? [[mock-tool:get_weather ${JSON.stringify(ARGS)}]]`
const WEATHER_SCHEMA = { type: 'object' as const, properties: { city: { type: 'string' }, unit: { type: 'string' }, days: { type: 'integer' }, detail: { type: 'string' } }, required: ['city'] }

let anthropicMock: MockServer
let tg: TestGateway & { rows(): Promise<Map<string, UsageRecord>> }
/** Raw bytes the Anthropic mock sent, per request id (the recording hop between Sluice and the mock). */
const upstreamBytes = new Map<string, string>()
let hop: http.Server
/** Tests in a file run one after another: the last answer the hop recorded is the one just relayed. */
const lastUpstream = () => [...upstreamBytes.values()].at(-1)

before(async () => {
  anthropicMock = await startMockServer({ port: 0, anthropicApiKey: UPSTREAM_KEY })
  const target = new URL(anthropicMock.url)
  let seq = 0
  hop = http.createServer((req, res) => {
    const tag = String(++seq)
    const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode!, { ...r.headers, 'x-hop-seq': tag })
      let text = ''
      r.on('data', (c: Buffer) => { text += c.toString('utf8'); res.write(c) })
      r.on('end', () => { upstreamBytes.set(tag, text); res.end() })
    })
    req.pipe(up)
  })
  await new Promise<void>((r) => hop.listen(0, '127.0.0.1', () => r()))
  const hopUrl = `http://127.0.0.1:${(hop.address() as { port: number }).port}`
  tg = await startLedgeredGateway(`
backends:
  - { id: openai-mock, type: mock, headers: { x-mock-completion-tokens: '7' } }
  - { id: anthropic-mock, type: anthropic, url: ${hopUrl}, auth: { apiKey: ${UPSTREAM_KEY} }, headers: { x-mock-completion-tokens: '7' }, models: { claude-x: claude-sonnet-4-5 } }
  - { id: openai-429, type: mock, headers: { x-mock-status: '429', x-mock-retry-after: '3' } }
  - { id: anthropic-429, type: anthropic, url: ${anthropicMock.url}, auth: { apiKey: ${UPSTREAM_KEY} }, headers: { x-mock-status: '429', x-mock-retry-after: '3' } }
  - { id: anthropic-529, type: anthropic, url: ${anthropicMock.url}, auth: { apiKey: ${UPSTREAM_KEY} }, headers: { x-mock-status: '529' } }
  - { id: openai-500, type: mock, headers: { x-mock-status: '500' } }
  - { id: anthropic-500, type: anthropic, url: ${anthropicMock.url}, auth: { apiKey: ${UPSTREAM_KEY} }, headers: { x-mock-status: '500' } }
  - { id: anthropic-400, type: anthropic, url: ${anthropicMock.url}, auth: { apiKey: ${UPSTREAM_KEY} }, headers: { x-mock-status: '400' } }
  - { id: anthropic-midstream, type: anthropic, url: ${anthropicMock.url}, auth: { apiKey: ${UPSTREAM_KEY} }, headers: { x-mock-error-after-tokens: '0' } }
pools:
  - id: mixed
    strategy: priority
    members: [ { backend: anthropic-529, priority: 1 }, { backend: openai-mock, priority: 2 } ]
  - id: mixed-stream
    strategy: priority
    members: [ { backend: anthropic-midstream, priority: 1 }, { backend: openai-mock, priority: 2 } ]
models:
  - { name: via-openai, target: openai-mock }
  - { name: claude-x, target: anthropic-mock }
  - { name: openai-429, target: openai-429 }
  - { name: anthropic-429, target: anthropic-429 }
  - { name: anthropic-529, target: anthropic-529 }
  - { name: openai-500, target: openai-500 }
  - { name: anthropic-500, target: anthropic-500 }
  - { name: anthropic-400, target: anthropic-400 }
  - { name: mixed, target: mixed }
  - { name: mixed-stream, target: mixed-stream }
  - { name: overloaded-then-openai, target: anthropic-529, fallbacks: [via-openai] }
consumers:
  - { id: conformance, keys: [ { value: ${SLUICE_KEY} } ] }
`)
})
after(async () => {
  await tg?.close()
  hop?.close()
  await anthropicMock?.close()
})

let n = 0
const rid = () => `conf-${process.pid}-${++n}`
const anthropicSdk = () => new Anthropic({ apiKey: SLUICE_KEY, baseURL: tg.url, maxRetries: 0 })
const openaiSdk = () => new OpenAI({ apiKey: SLUICE_KEY, baseURL: tg.url + '/v1', maxRetries: 0 })
/** The mocks called directly: what the backend itself reports for a request. */
const directAnthropic = () => new Anthropic({ apiKey: UPSTREAM_KEY, baseURL: anthropicMock.url, maxRetries: 0, defaultHeaders: { 'x-mock-completion-tokens': '7' } })
const directOpenAI = () => new OpenAI({ apiKey: 'x', baseURL: tg.gw.mocks.urlOf('openai-mock')! + '/v1', maxRetries: 0, defaultHeaders: { 'x-mock-completion-tokens': '7' } })

const textOf = (m: Anthropic.Message) => m.content.filter((b): b is Anthropic.TextBlock => b.type === 'text').map((b) => b.text).join('')
const anthUsage = (u: Anthropic.Usage) => ({ prompt: u.input_tokens + (u.cache_read_input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0), completion: u.output_tokens })
const oaUsage = (u: OpenAI.CompletionUsage | undefined) => ({ prompt: u!.prompt_tokens, completion: u!.completion_tokens })
async function row(id: string): Promise<UsageRecord> {
  const r = (await tg.rows()).get(id)
  assert.ok(r, `ledger row for ${id}`)
  return r
}

describe('Anthropic SDK → Sluice → mock OpenAI (translated)', () => {
  const params = { model: 'via-openai', max_tokens: 50, system: SYSTEM, messages: [{ role: 'user' as const, content: 'Tell me about rivers' }] }

  it('plain and streamed text equal what the backend answered, usage in the ledger equal to its report', async () => {
    const truth = await directOpenAI().chat.completions.create({ model: 'gpt-4o-mini', max_tokens: 50, messages: [{ role: 'system', content: SYSTEM }, { role: 'user', content: 'Tell me about rivers' }] })
    const id = rid()
    const msg = await anthropicSdk().messages.create(params, { headers: { 'x-request-id': id } })
    assert.equal(textOf(msg), truth.choices[0]!.message.content)
    assert.equal(msg.stop_reason, 'end_turn')
    assert.deepEqual(anthUsage(msg.usage), oaUsage(truth.usage))
    assert.deepEqual([(await row(id)).promptTokens, (await row(id)).completionTokens], [truth.usage!.prompt_tokens, truth.usage!.completion_tokens])
    const sid = rid()
    const stream = anthropicSdk().messages.stream(params, { headers: { 'x-request-id': sid } })
    const final = await stream.finalMessage()
    assert.equal(textOf(final), truth.choices[0]!.message.content)
    assert.deepEqual(anthUsage(final.usage), oaUsage(truth.usage))
    const r = await row(sid)
    assert.deepEqual([r.promptTokens, r.completionTokens, r.stream], [truth.usage!.prompt_tokens, truth.usage!.completion_tokens, true])
  })

  it('a streamed tool call arrives as a tool_use block fed by many input_json_delta events; the tool result turn gets text', async () => {
    const tools = [{ name: 'get_weather', description: 'Weather', input_schema: WEATHER_SCHEMA }]
    const id = rid()
    const stream = anthropicSdk().messages.stream({ ...params, tools, messages: [{ role: 'user', content: MARKED }] }, { headers: { 'x-request-id': id } })
    let pieces = 0
    stream.on('inputJson', () => pieces++)
    const final = await stream.finalMessage()
    assert.equal(final.stop_reason, 'tool_use')
    const use = final.content.find((b) => b.type === 'tool_use') as Anthropic.ToolUseBlock
    assert.deepEqual(use.input, ARGS)
    assert.equal(use.name, 'get_weather')
    assert.ok(pieces >= 5, `${pieces} argument pieces`)
    const truth = await directOpenAI().chat.completions.create({ model: 'gpt-4o-mini', max_tokens: 50, tools: [{ type: 'function', function: { name: 'get_weather', description: 'Weather', parameters: WEATHER_SCHEMA } }], messages: [{ role: 'system', content: SYSTEM }, { role: 'user', content: MARKED }] })
    assert.equal(truth.choices[0]!.message.tool_calls![0]!.id, use.id) // the backend's own call id, kept
    assert.equal((await row(id)).completionTokens, truth.usage!.completion_tokens)
    const next = await anthropicSdk().messages.create({
      ...params, tools,
      messages: [{ role: 'user', content: MARKED }, { role: 'assistant', content: final.content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '21 degrees' }] }],
    })
    assert.equal(next.stop_reason, 'end_turn')
    assert.equal(next.content[0]!.type, 'text')
  })

  it('an image input (base64 and URL) is counted as the backend counts it', async () => {
    const withImage = (source: Anthropic.ImageBlockParam['source']) => anthropicSdk().messages.create({ ...params, messages: [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image', source }] }] })
    const plain = await anthropicSdk().messages.create({ ...params, messages: [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }] }] })
    const b64 = await withImage({ type: 'base64', media_type: 'image/png', data: PNG })
    const url = await withImage({ type: 'url', url: 'https://example.com/cat.png' })
    assert.equal(b64.usage.input_tokens - plain.usage.input_tokens, 85) // the mock's flat image price
    assert.equal(url.usage.input_tokens, b64.usage.input_tokens)
  })

  it('backend errors come back in Anthropic shapes: 429 with retry-after, 5xx as 502', async () => {
    await assert.rejects(anthropicSdk().messages.create({ ...params, model: 'openai-429' }), (e: any) => e.status === 429 && e.headers.get('retry-after') === '3' && e.error?.error?.type === 'rate_limit_error')
    await assert.rejects(anthropicSdk().messages.create({ ...params, model: 'openai-500' }), (e: any) => e.status === 502 && e.error?.type === 'error' && e.error?.error?.type === 'api_error')
    const ok = await anthropicSdk().messages.create(params)
    assert.equal(ok.type, 'message') // the healthy model answers the same request
  })
})

describe('Anthropic SDK → Sluice → mock Anthropic (same schema: passthrough)', () => {
  const params = { model: 'claude-x', max_tokens: 50, system: SYSTEM, messages: [{ role: 'user' as const, content: 'Tell me about rivers' }] }

  it('the backend bytes reach the client untouched, JSON and stream, and the ledger reads their usage', async () => {
    const truth = await directAnthropic().messages.create({ ...params, model: 'claude-sonnet-4-5' })
    const id = rid()
    const raw = await fetch(tg.url + '/v1/messages', { method: 'POST', headers: { 'x-api-key': SLUICE_KEY, 'content-type': 'application/json', 'x-request-id': id }, body: JSON.stringify(params) })
    const text = await raw.text()
    assert.equal(text, lastUpstream()) // byte for byte
    const msg = JSON.parse(text) as Anthropic.Message
    assert.equal(msg.model, 'claude-sonnet-4-5') // the backend's own answer, model name included
    assert.deepEqual(msg.content, truth.content)
    assert.deepEqual((await row(id)).promptTokens, truth.usage.input_tokens)
    const sid = rid()
    const s = await fetch(tg.url + '/v1/messages', { method: 'POST', headers: { 'x-api-key': SLUICE_KEY, 'content-type': 'application/json', 'x-request-id': sid }, body: JSON.stringify({ ...params, stream: true }) })
    const streamed = await s.text()
    assert.equal(streamed, lastUpstream())
    assert.match(streamed, /^event: message_start\n/)
    const r = await row(sid)
    assert.deepEqual([r.promptTokens, r.completionTokens], [truth.usage.input_tokens, truth.usage.output_tokens])
  })

  it('the SDK stream, tool use and thinking with its signature across turns', async () => {
    const final = await anthropicSdk().messages.stream({ ...params, thinking: { type: 'enabled', budget_tokens: 1024 }, tools: [{ name: 'get_weather', input_schema: WEATHER_SCHEMA }], messages: [{ role: 'user', content: MARKED }] }).finalMessage()
    assert.deepEqual(final.content.map((b) => b.type), ['thinking', 'tool_use'])
    assert.deepEqual((final.content[1] as Anthropic.ToolUseBlock).input, ARGS)
    // The mock refuses a signature that is not its own: the turn passing proves it came back unchanged.
    const next = await anthropicSdk().messages.create({ ...params, thinking: { type: 'enabled', budget_tokens: 1024 }, tools: [{ name: 'get_weather', input_schema: WEATHER_SCHEMA }], messages: [{ role: 'user', content: MARKED }, { role: 'assistant', content: final.content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: (final.content[1] as Anthropic.ToolUseBlock).id, content: 'sunny' }] }] })
    assert.deepEqual(next.content.map((b) => b.type), ['thinking', 'text'])
  })

  it('prompt-caching usage: prompt tokens in the ledger = input + cache read + cache write', async () => {
    const id = rid()
    const msg = await anthropicSdk().messages.create({ ...params, system: [{ type: 'text', text: 'A long and stable system prompt to cache.', cache_control: { type: 'ephemeral' } }] }, { headers: { 'x-request-id': id } })
    assert.ok(msg.usage.cache_creation_input_tokens! > 0)
    const r = await row(id)
    assert.equal(r.promptTokens, msg.usage.input_tokens + msg.usage.cache_creation_input_tokens! + msg.usage.cache_read_input_tokens!)
  })

  it('errors: 429 with retry-after, 529 overloaded, a 400 relayed with the backend body', async () => {
    await assert.rejects(anthropicSdk().messages.create({ ...params, model: 'anthropic-429' }), (e: any) => e.status === 429 && e.headers.get('retry-after') === '3')
    await assert.rejects(anthropicSdk().messages.create({ ...params, model: 'anthropic-529' }), (e: any) => e.status === 502 && e.error?.error?.type === 'api_error')
    await assert.rejects(anthropicSdk().messages.create({ ...params, model: 'anthropic-400' }), (e: any) => e.status === 400 && e.error?.error?.type === 'invalid_request_error' && /mock/.test(e.error?.error?.message))
  })
})

describe('OpenAI SDK → Sluice → mock Anthropic (translated)', () => {
  const params = { model: 'claude-x', max_tokens: 50, messages: [{ role: 'system' as const, content: SYSTEM }, { role: 'user' as const, content: 'Tell me about rivers' }] }

  it('plain and streamed text, with usage equal to the backend report (ledger too)', async () => {
    const truth = await directAnthropic().messages.create({ model: 'claude-sonnet-4-5', max_tokens: 50, system: SYSTEM, messages: [{ role: 'user', content: 'Tell me about rivers' }] })
    const id = rid()
    const res = await openaiSdk().chat.completions.create(params, { headers: { 'x-request-id': id } })
    assert.equal(res.choices[0]!.message.content, textOf(truth))
    assert.equal(res.choices[0]!.finish_reason, 'stop')
    assert.deepEqual(oaUsage(res.usage), anthUsage(truth.usage))
    assert.equal((await row(id)).promptTokens, truth.usage.input_tokens)
    const sid = rid()
    const stream = await openaiSdk().chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } }, { headers: { 'x-request-id': sid } })
    let text = ''
    let usage: OpenAI.CompletionUsage | undefined
    for await (const c of stream) {
      text += c.choices[0]?.delta.content ?? ''
      if (c.usage) usage = c.usage
    }
    assert.equal(text, textOf(truth))
    assert.deepEqual(oaUsage(usage), anthUsage(truth.usage))
    assert.deepEqual([(await row(sid)).promptTokens, (await row(sid)).completionTokens], [truth.usage.input_tokens, truth.usage.output_tokens])
  })

  it('a streamed tool call split over many chunks, then the tool result turn', async () => {
    const tools = [{ type: 'function' as const, function: { name: 'get_weather', parameters: WEATHER_SCHEMA } }]
    const stream = await openaiSdk().chat.completions.create({ ...params, tools, stream: true, messages: [{ role: 'user', content: MARKED }] })
    let args = ''
    let pieces = 0
    let callId = ''
    let finish: string | null = null
    for await (const c of stream) {
      const tc = c.choices[0]?.delta.tool_calls?.[0]
      if (tc?.id) callId = tc.id
      if (tc?.function?.arguments) { args += tc.function.arguments; pieces++ }
      finish = c.choices[0]?.finish_reason ?? finish
    }
    assert.deepEqual(JSON.parse(args), ARGS)
    assert.ok(pieces >= 5)
    assert.match(callId, /^toolu_/)
    assert.equal(finish, 'tool_calls')
    const next = await openaiSdk().chat.completions.create({ ...params, tools, messages: [{ role: 'user', content: MARKED }, { role: 'assistant', content: null, tool_calls: [{ id: callId, type: 'function', function: { name: 'get_weather', arguments: args } }] }, { role: 'tool', tool_call_id: callId, content: '21 degrees' }] })
    assert.equal(next.choices[0]!.finish_reason, 'stop')
    assert.ok(next.choices[0]!.message.content)
  })

  it('an image input, and a field Anthropic cannot keep is a 400 naming it', async () => {
    const img = await openaiSdk().chat.completions.create({ ...params, messages: [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }] }] })
    const plain = await openaiSdk().chat.completions.create({ ...params, messages: [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }] }] })
    assert.equal(img.usage!.prompt_tokens - plain.usage!.prompt_tokens, 85)
    const id = rid()
    await assert.rejects(openaiSdk().chat.completions.create({ ...params, logprobs: true }, { headers: { 'x-request-id': id } }), (e: any) => e.status === 400 && e.param === 'logprobs')
    assert.equal((await row(id)).status, 400) // the refusal has its ledger row
    const audio = openaiSdk().chat.completions.create({ ...params, messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } }] }] })
    await assert.rejects(audio, (e: any) => e.status === 400 && e.param === 'messages[0].content[0].type')
  })

  it('thinking comes back as reasoning_content + thinking_blocks, and the signature survives the next turn', async () => {
    const thinking = { type: 'enabled', budget_tokens: 1024 }
    const first = await openaiSdk().chat.completions.create({ ...params, thinking } as any)
    const m = first.choices[0]!.message as any
    assert.ok(m.reasoning_content)
    assert.equal(m.thinking_blocks[0].thinking, m.reasoning_content)
    const streamed = await openaiSdk().chat.completions.create({ ...params, thinking, stream: true } as any)
    let reasoning = ''
    let blocks: any[] = []
    for await (const c of streamed as any) {
      reasoning += c.choices[0]?.delta.reasoning_content ?? ''
      if (c.choices[0]?.delta.thinking_blocks) blocks = c.choices[0].delta.thinking_blocks
    }
    assert.equal(reasoning, m.reasoning_content)
    assert.deepEqual(blocks, m.thinking_blocks)
    // The mock refuses a signature it did not give: the turn passing proves it came back unchanged.
    const next = (b: any[]) => openaiSdk().chat.completions.create({ ...params, thinking, messages: [...params.messages, { role: 'assistant', content: m.content, thinking_blocks: b }, { role: 'user', content: 'go on' }] } as any)
    assert.ok((await next(m.thinking_blocks)).choices[0]!.message.content)
    await assert.rejects(next([{ ...m.thinking_blocks[0], signature: 'forged' }]), (e: any) => e.status === 400 && /signature/.test(e.message))
  })

  it('JSON mode is emulated with a forced tool: the answer is the JSON text', async () => {
    const res = await openaiSdk().chat.completions.create({ ...params, response_format: { type: 'json_schema', json_schema: { name: 'weather', schema: WEATHER_SCHEMA } } })
    assert.deepEqual(JSON.parse(res.choices[0]!.message.content!), { city: 'mock' })
    assert.equal(res.choices[0]!.finish_reason, 'stop')
  })

  it('backend errors: 429 with retry-after, 529 overloaded and 5xx fail as 502 after failover', async () => {
    await assert.rejects(openaiSdk().chat.completions.create({ ...params, model: 'anthropic-429' }), (e: any) => e.status === 429 && e.headers.get('retry-after') === '3' && e.code === 'rate_limit_exceeded')
    await assert.rejects(openaiSdk().chat.completions.create({ ...params, model: 'anthropic-529' }), (e: any) => e.status === 502)
    await assert.rejects(openaiSdk().chat.completions.create({ ...params, model: 'anthropic-500' }), (e: any) => e.status === 502)
  })
})

describe('fallbacks across providers', () => {
  it('a pool whose Anthropic member is overloaded (529) answers from its OpenAI member, for both SDKs', async () => {
    const id = rid()
    const res = await anthropicSdk().messages.create({ model: 'mixed', max_tokens: 20, messages: [{ role: 'user', content: 'hello' }] }, { headers: { 'x-request-id': id } }).withResponse()
    assert.equal(res.response.headers.get('x-sluice-backend'), 'openai-mock')
    assert.equal(res.response.headers.get('x-sluice-attempts'), '2')
    const r = await row(id)
    assert.deepEqual([r.backend, r.attempts, r.status], ['openai-mock', 2, 200])
    assert.deepEqual([r.promptTokens, r.completionTokens], [res.data.usage.input_tokens, res.data.usage.output_tokens])
    const oa = await openaiSdk().chat.completions.create({ model: 'mixed', max_tokens: 20, messages: [{ role: 'user', content: 'hello' }] }).withResponse()
    assert.equal(oa.response.headers.get('x-sluice-backend'), 'openai-mock')
    assert.equal(oa.data.choices[0]!.message.content, textOf(res.data)) // same backend, same request: same answer
  })

  it('an Anthropic stream that fails before its first content fails over to the OpenAI member invisibly', async () => {
    const final = await anthropicSdk().messages.stream({ model: 'mixed-stream', max_tokens: 20, messages: [{ role: 'user', content: 'hello' }] }).finalMessage()
    const direct = await anthropicSdk().messages.create({ model: 'via-openai', max_tokens: 20, messages: [{ role: 'user', content: 'hello' }] })
    assert.equal(textOf(final), textOf(direct))
  })

  it('a model fallback chain crosses from Anthropic to OpenAI', async () => {
    const res = await openaiSdk().chat.completions.create({ model: 'overloaded-then-openai', max_tokens: 20, messages: [{ role: 'user', content: 'hello' }] }).withResponse()
    assert.equal(res.response.headers.get('x-sluice-backend'), 'openai-mock')
  })
})

describe('the same request through both SDKs gets the same content, tool calls and usage', () => {
  for (const model of ['via-openai', 'claude-x']) {
    it(`served by ${model}`, async () => {
      const tools = [{ name: 'get_weather', input_schema: WEATHER_SCHEMA }]
      const a = await anthropicSdk().messages.create({ model, max_tokens: 30, system: SYSTEM, tools, messages: [{ role: 'user', content: 'Hi there' }] })
      const o = await openaiSdk().chat.completions.create({ model, max_tokens: 30, tools: [{ type: 'function', function: { name: 'get_weather', parameters: WEATHER_SCHEMA } }], messages: [{ role: 'system', content: SYSTEM }, { role: 'user', content: 'Hi there' }] })
      assert.equal(o.choices[0]!.message.content, textOf(a))
      assert.deepEqual(oaUsage(o.usage), anthUsage(a.usage))
      const at = await anthropicSdk().messages.create({ model, max_tokens: 30, system: SYSTEM, tools, messages: [{ role: 'user', content: MARKED }] })
      const ot = await openaiSdk().chat.completions.create({ model, max_tokens: 30, tools: [{ type: 'function', function: { name: 'get_weather', parameters: WEATHER_SCHEMA } }], messages: [{ role: 'system', content: SYSTEM }, { role: 'user', content: MARKED }] })
      const use = at.content.find((b) => b.type === 'tool_use') as Anthropic.ToolUseBlock
      const call = ot.choices[0]!.message.tool_calls![0]! as OpenAI.ChatCompletionMessageFunctionToolCall
      assert.deepEqual([call.id, call.function.name, JSON.parse(call.function.arguments)], [use.id, use.name, use.input])
      assert.deepEqual(oaUsage(ot.usage), anthUsage(at.usage))
    })
  }
})
