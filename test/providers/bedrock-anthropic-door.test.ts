// Conformance: Anthropic SDK → Sluice (/v1/messages) → SigV4-signed mock Bedrock, and the same request through
// the OpenAI SDK gets the same content, tool calls and usage. Usage is checked against what the backend
// reported on the wire (test/helpers/bedrock.ts), the ledger too.
process.env.AWS_EC2_METADATA_DISABLED = 'true'

import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { encode } from 'gpt-tokenizer/encoding/o200k_base'
import { startMockServer, type MockServer } from '../../src/mock/llm.ts'
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts'
import { recordingProxy, type Reported } from '../helpers/bedrock.ts'

const KEY = 'sk-bedrock-anthropic-door'
const MODEL_ID = 'us.anthropic.claude-sonnet-4-20250514-v1:0'
const STATIC = '{ accessKeyId: AKIDEXAMPLE, secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }'
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=='

const dir = mkdtempSync(join(tmpdir(), 'sluice-bedrock-anth-'))
let mock: MockServer
let proxy: Awaited<ReturnType<typeof recordingProxy>>
let tg: TestGateway
let anthropic: Anthropic
let openai: OpenAI
let n = 0

const yaml = (proxyUrl: string, mockUrl: string) => `
ledger: { type: sqlite, path: ${join(dir, 'ledger.db')}, flushInterval: 50ms }
backends:
  - { id: bed, type: bedrock, region: eu-west-1, url: ${proxyUrl}, auth: { awsSigV4: ${STATIC} }, models: { claude: "${MODEL_ID}" }, headers: { x-mock-completion-tokens: "6" } }
  - { id: bed-429, type: bedrock, region: eu-west-1, url: ${proxyUrl}, auth: { awsSigV4: ${STATIC} }, models: { claude-429: "${MODEL_ID}" }, headers: { x-mock-status: "429", x-mock-retry-after: "3" } }
  - { id: bed-503, type: bedrock, region: eu-west-1, url: ${proxyUrl}, auth: { awsSigV4: ${STATIC} }, models: { claude-mixed: "${MODEL_ID}" }, headers: { x-mock-status: "503" } }
  - { id: oai, type: openai-compatible, url: ${mockUrl}/v1, headers: { x-mock-completion-tokens: "5" } }
pools:
  - { id: mixed, strategy: priority, members: [ { backend: bed-503, priority: 1 }, { backend: oai, priority: 2 } ] }
models:
  - { name: claude, target: bed }
  - { name: claude-429, target: bed-429, maxAttempts: 1 }
  - { name: claude-mixed, target: mixed }
consumers:
  - { id: team, keys: [ { value: ${KEY} } ] }
`

const userText = 'Tell me about the river.'
const weather = { name: 'get_weather', description: 'Weather for a city', input_schema: { type: 'object' as const, properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city'] } }

async function call<T>(fn: (headers: Record<string, string>) => Promise<T>): Promise<{ id: string; out: T; reported: Reported[] }> {
  const id = `bedrock-anth-${++n}`
  const before = proxy.seen.length
  const out = await fn({ 'x-request-id': id })
  return { id, out, reported: proxy.seen.slice(before) }
}

async function row(id: string) {
  assert.equal(await tg.gw.ledger!.flush(10_000), true)
  const [r] = await tg.gw.ledger!.store.records({ requestIds: [id] })
  return r!
}

describe('Anthropic SDK → Sluice → Bedrock (mock, SigV4)', () => {
  before(async () => {
    mock = await startMockServer()
    proxy = await recordingProxy(mock.url)
    tg = await startTestGateway(yaml(proxy.url, mock.url))
    anthropic = new Anthropic({ apiKey: KEY, baseURL: tg.url, maxRetries: 0 })
    openai = new OpenAI({ apiKey: KEY, baseURL: `${tg.url}/v1`, maxRetries: 0 })
  })
  after(async () => {
    await tg?.close()
    await proxy?.close()
    await mock?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('plain text: Anthropic-shaped answer, usage as Bedrock reported it, the same text the OpenAI SDK gets', async () => {
    const { id, out, reported } = await call((headers) => anthropic.messages.create({ model: 'claude', max_tokens: 100, system: 'Be brief.', messages: [{ role: 'user', content: userText }] }, { headers }))
    assert.equal(out.type, 'message')
    assert.equal(out.role, 'assistant')
    assert.equal(out.stop_reason, 'end_turn')
    const text = (out.content[0] as Anthropic.TextBlock).text
    assert.equal(encode(text).length, 6)
    assert.match(reported[0]!.auth, /Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/bedrock\/aws4_request/)
    assert.equal(reported[0]!.input, encode('Be brief.').length + encode(userText).length)
    assert.deepEqual([out.usage.input_tokens, out.usage.output_tokens], [reported[0]!.input, reported[0]!.output])
    const r = await row(id)
    assert.deepEqual([r.backend, r.promptTokens, r.completionTokens], ['bed', reported[0]!.input, reported[0]!.output])

    const viaOpenAI = await openai.chat.completions.create({ model: 'claude', max_tokens: 100, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: userText }] })
    assert.equal(viaOpenAI.choices[0]!.message.content, text)
    assert.deepEqual([viaOpenAI.usage!.prompt_tokens, viaOpenAI.usage!.completion_tokens], [out.usage.input_tokens, out.usage.output_tokens])
  })

  it('streamed text: Anthropic SSE events, final usage equal to the metadata event', async () => {
    const { id, out, reported } = await call(async (headers) => {
      const stream = anthropic.messages.stream({ model: 'claude', max_tokens: 100, messages: [{ role: 'user', content: userText }] }, { headers })
      let deltas = 0
      stream.on('text', () => deltas++)
      const final = await stream.finalMessage()
      return { final, deltas }
    })
    assert.equal(out.deltas, 6)
    assert.equal(encode((out.final.content[0] as Anthropic.TextBlock).text).length, 6)
    assert.equal(out.final.stop_reason, 'end_turn')
    assert.deepEqual([out.final.usage.input_tokens, out.final.usage.output_tokens], [reported[0]!.input, reported[0]!.output])
    const r = await row(id)
    assert.deepEqual([r.promptTokens, r.completionTokens, r.stream], [reported[0]!.input, reported[0]!.output, true])
  })

  it('a streamed tool call (input_json_delta over many events), then the tool result turn; the OpenAI SDK sees the same call', async () => {
    const { out, reported } = await call(async (headers) => {
      const stream = anthropic.messages.stream({ model: 'claude', max_tokens: 100, tools: [weather], tool_choice: { type: 'any' }, messages: [{ role: 'user', content: 'Weather in Paris?' }] }, { headers })
      let pieces = 0
      stream.on('inputJson', () => pieces++)
      return { final: await stream.finalMessage(), pieces }
    })
    const use = out.final.content.find((b) => b.type === 'tool_use') as Anthropic.ToolUseBlock
    assert.equal(use.name, 'get_weather')
    assert.deepEqual(use.input, { city: 'mock city value', days: 42 })
    assert.ok(out.pieces >= 5, `input in ${out.pieces} events`)
    assert.equal(out.final.stop_reason, 'tool_use')
    assert.deepEqual([out.final.usage.input_tokens, out.final.usage.output_tokens], [reported[0]!.input, reported[0]!.output])

    const viaOpenAI = await openai.chat.completions.create({ model: 'claude', max_tokens: 100, tool_choice: 'required', tools: [{ type: 'function', function: { name: weather.name, description: weather.description, parameters: weather.input_schema } }], messages: [{ role: 'user', content: 'Weather in Paris?' }] })
    const call0 = viaOpenAI.choices[0]!.message.tool_calls![0]! as OpenAI.ChatCompletionMessageFunctionToolCall
    assert.equal(call0.function.name, use.name)
    assert.deepEqual(JSON.parse(call0.function.arguments), use.input)
    assert.deepEqual([viaOpenAI.usage!.prompt_tokens, viaOpenAI.usage!.completion_tokens], [out.final.usage.input_tokens, out.final.usage.output_tokens])

    const next = await anthropic.messages.create({ model: 'claude', max_tokens: 100, tools: [weather], messages: [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: [use] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'Sunny, 24C' }] },
    ] })
    assert.equal(next.stop_reason, 'end_turn')
    assert.equal(next.content[0]!.type, 'text')
  })

  it('an image (base64 source) reaches Bedrock as bytes', async () => {
    const { out, reported } = await call((headers) => anthropic.messages.create({ model: 'claude', max_tokens: 100, messages: [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } }] }] }, { headers }))
    assert.equal(reported[0]!.input, encode('What is this?').length + 85)
    assert.equal(out.usage.input_tokens, reported[0]!.input)
  })

  it('thinking: a signed thinking block comes back and verifies at Bedrock when replayed', async () => {
    const first = await anthropic.messages.create({ model: 'claude', max_tokens: 2000, thinking: { type: 'enabled', budget_tokens: 1024 }, messages: [{ role: 'user', content: userText }] })
    const block = first.content.find((b) => b.type === 'thinking') as Anthropic.ThinkingBlock
    assert.equal(block.thinking, 'Let me think about this first.')
    assert.ok(block.signature.length > 10)
    const second = await anthropic.messages.create({ model: 'claude', max_tokens: 2000, thinking: { type: 'enabled', budget_tokens: 1024 }, messages: [{ role: 'user', content: userText }, { role: 'assistant', content: first.content }, { role: 'user', content: 'More.' }] })
    assert.equal(second.stop_reason, 'end_turn')
  })

  it('errors in Anthropic\'s shape: Bedrock throttling → 429 rate_limit_error with retry-after; a cross-provider fallback answers', async () => {
    await assert.rejects(anthropic.messages.create({ model: 'claude-429', max_tokens: 10, messages: [{ role: 'user', content: userText }] }), (e: unknown) => {
      assert.ok(e instanceof Anthropic.RateLimitError)
      assert.equal(e.headers?.get('retry-after'), '3')
      assert.equal((e.error as { error?: { type?: string } }).error?.type, 'rate_limit_error')
      return true
    })
    const { data, response } = await anthropic.messages.create({ model: 'claude-mixed', max_tokens: 10, messages: [{ role: 'user', content: userText }] }).withResponse()
    assert.equal(response.headers.get('x-sluice-backend'), 'oai')
    assert.equal(data.usage.output_tokens, 5)
  })
})
