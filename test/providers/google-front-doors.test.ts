import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { startTestGateway, TEST_KEY, type TestGateway } from '../helpers/gateway.ts'
import { startGoogleTokenServer, type GoogleTokenServer } from '../helpers/google-token-server.ts'
import { geminiUsageOf, startRecordingMock, type RecordingMock } from '../helpers/recording-mock.ts'
import { ledgerRow as ledgerRowOf } from '../helpers/ledger-row.ts'

// The Anthropic front door in front of Google backends (the mock speaking Gemini, and Vertex AI with Gemini
// and Claude models), and the OpenAI front door in front of Claude on Vertex: the SDKs get the same content,
// tool calls and usage whichever serves, and the ledger holds what the backend reported.

let mock: RecordingMock
let tokens: GoogleTokenServer
let tg: TestGateway
let anthropic: Anthropic
let openai: OpenAI
const dir = mkdtempSync(join(tmpdir(), 'sluice-google-doors-'))

before(async () => {
  mock = await startRecordingMock()
  tokens = await startGoogleTokenServer(mock.url)
  const sa = tokens.serviceAccountFile(dir)
  tg = await startTestGateway(`
ledger: { type: sqlite, path: ${join(dir, 'ledger.db')}, flushInterval: 20ms }
backends:
  - { id: gem, type: gemini, url: ${mock.url}, auth: { apiKey: AIza-test-key } }
  - { id: vtx, type: vertex, url: ${mock.url}, project: my-proj, region: us-east5, auth: { google: { credentialsFile: ${sa} } } }
  - { id: vtx-429, type: vertex, url: ${mock.url}, project: my-proj, region: us-east5, auth: { google: { credentialsFile: ${sa} } }, headers: { x-mock-status: "429", x-mock-retry-after: "9" }, models: { claude-limited: claude-sonnet-4-5 } }
  - { id: vtx-529, type: vertex, url: ${mock.url}, project: my-proj, region: us-east5, auth: { google: { credentialsFile: ${sa} } }, headers: { x-mock-status: "529" }, models: { claude-overloaded: claude-sonnet-4-5 } }
models:
  - { name: gemini-2.5-flash, target: gem }
  - { name: vertex-gemini, target: vtx }
  - { name: claude-sonnet-4-5, target: vtx }
  - { name: claude-limited, target: vtx-429, maxAttempts: 1 }
  - { name: claude-overloaded, target: vtx-529, maxAttempts: 1 }
consumers:
  - { id: team-a, keys: [ { value: ${TEST_KEY} } ] }
`)
  anthropic = new Anthropic({ baseURL: tg.url, apiKey: TEST_KEY, maxRetries: 0 })
  openai = new OpenAI({ baseURL: `${tg.url}/v1`, apiKey: TEST_KEY, maxRetries: 0 })
})
after(async () => {
  await tg.close()
  await tokens.close()
  await mock.close()
  rmSync(dir, { recursive: true, force: true })
})

const ledgerRow = (requestId: string) => ledgerRowOf(tg.gw, requestId)

const WEATHER: Anthropic.Tool = { name: 'get_weather', description: 'Weather of a city', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }

test('Anthropic SDK → Gemini: text, stop reason and usage as Gemini reported it', async () => {
  const { data: msg, response } = await anthropic.messages.create({ model: 'gemini-2.5-flash', max_tokens: 6, system: 'Be brief.', messages: [{ role: 'user', content: 'Hello there' }] }).withResponse()
  const sent = JSON.parse(mock.last().body) as Record<string, unknown>
  assert.deepEqual(sent.systemInstruction, { parts: [{ text: 'Be brief.' }] })
  assert.equal(msg.type, 'message')
  assert.equal(msg.stop_reason, 'max_tokens')
  const u = geminiUsageOf(mock.last())
  assert.equal(msg.usage.input_tokens, u.promptTokenCount)
  assert.equal(msg.usage.output_tokens, 6)
  const row = await ledgerRow(response.headers.get('x-request-id')!)
  assert.deepEqual({ p: row.promptTokens, c: row.completionTokens, backend: row.backend }, { p: u.promptTokenCount, c: 6, backend: 'gem' })
})

test('Anthropic SDK → Gemini: a streamed tool call, then the tool result turn', async () => {
  const stream = anthropic.messages.stream({ model: 'gemini-2.5-flash', max_tokens: 100, tools: [WEATHER], tool_choice: { type: 'any' }, messages: [{ role: 'user', content: 'Weather in Paris?' }] })
  const json: string[] = []
  stream.on('inputJson', (delta) => json.push(delta))
  const final = await stream.finalMessage()
  assert.equal(final.stop_reason, 'tool_use')
  const use = final.content.find((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use')!
  assert.equal(use.name, 'get_weather')
  assert.deepEqual(use.input, { city: 'mock' })
  assert.equal(json.join(''), '{"city":"mock"}')
  assert.deepEqual((JSON.parse(mock.last().body) as { toolConfig: unknown }).toolConfig, { functionCallingConfig: { mode: 'ANY' } })

  const answer = await anthropic.messages.create({
    model: 'gemini-2.5-flash', max_tokens: 5, tools: [WEATHER],
    messages: [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: final.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'sunny, 21C' }] },
    ],
  })
  const contents = (JSON.parse(mock.last().body) as { contents: Array<{ role: string; parts: Array<Record<string, unknown>> }> }).contents
  assert.deepEqual(contents[2], { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: { output: 'sunny, 21C' } } }] })
  assert.equal(answer.stop_reason, 'max_tokens')
  assert.equal(answer.content[0]!.type, 'text')
})

test('same request, two front doors, one Gemini backend: identical content, tool calls and usage', async () => {
  const viaOpenAI = await openai.chat.completions.create({ model: 'gemini-2.5-flash', max_tokens: 100, tool_choice: 'required', tools: [{ type: 'function', function: { name: WEATHER.name, description: WEATHER.description!, parameters: WEATHER.input_schema as Record<string, unknown> } }], messages: [{ role: 'user', content: 'Weather in Paris?' }] })
  const viaAnthropic = await anthropic.messages.create({ model: 'gemini-2.5-flash', max_tokens: 100, tool_choice: { type: 'any' }, tools: [WEATHER], messages: [{ role: 'user', content: 'Weather in Paris?' }] })
  const oCall = viaOpenAI.choices[0]!.message.tool_calls![0]! as OpenAI.Chat.ChatCompletionMessageFunctionToolCall
  const aCall = viaAnthropic.content.find((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use')!
  assert.deepEqual({ name: aCall.name, input: aCall.input }, { name: oCall.function.name, input: JSON.parse(oCall.function.arguments) })
  assert.deepEqual({ i: viaAnthropic.usage.input_tokens, o: viaAnthropic.usage.output_tokens }, { i: viaOpenAI.usage!.prompt_tokens, o: viaOpenAI.usage!.completion_tokens })
})

test('Anthropic SDK → Vertex Gemini (streamed text)', async () => {
  const stream = anthropic.messages.stream({ model: 'vertex-gemini', max_tokens: 4, messages: [{ role: 'user', content: 'Tell me' }] })
  const final = await stream.finalMessage()
  assert.ok(mock.last().url.startsWith('/v1/projects/my-proj/locations/us-east5/publishers/google/models/vertex-gemini:streamGenerateContent'))
  assert.equal(final.usage.output_tokens, 4)
  assert.equal(final.usage.input_tokens, geminiUsageOf(mock.last()).promptTokenCount)
})

test('OpenAI SDK → Claude on Vertex: rawPredict with anthropic_version in the body and no model; streamed too', async () => {
  const { data, response } = await openai.chat.completions.create({ model: 'claude-sonnet-4-5', max_tokens: 5, messages: [{ role: 'user', content: 'Hello there' }] }).withResponse()
  const ex = mock.last()
  assert.equal(ex.url, '/v1/projects/my-proj/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5:rawPredict')
  assert.match(String(ex.headers.authorization), /^Bearer ya29\.mock\./)
  const sent = JSON.parse(ex.body) as Record<string, unknown>
  assert.equal(sent.anthropic_version, 'vertex-2023-10-16')
  assert.equal('model' in sent, false)
  const backendUsage = (JSON.parse(ex.response) as { usage: { input_tokens: number; output_tokens: number } }).usage
  assert.deepEqual({ p: data.usage!.prompt_tokens, c: data.usage!.completion_tokens }, { p: backendUsage.input_tokens, c: 5 })
  const row = await ledgerRow(response.headers.get('x-request-id')!)
  assert.deepEqual({ p: row.promptTokens, c: row.completionTokens, backend: row.backend }, { p: backendUsage.input_tokens, c: 5, backend: 'vtx' })

  const stream = await openai.chat.completions.create({ model: 'claude-sonnet-4-5', stream: true, max_tokens: 4, messages: [{ role: 'user', content: 'Hello there' }] })
  let text = ''
  for await (const c of stream) text += c.choices[0]?.delta?.content ?? ''
  assert.ok(mock.last().url.endsWith(':streamRawPredict'))
  assert.equal((JSON.parse(mock.last().body) as { stream: boolean }).stream, true)
  assert.ok(text.length > 0)
})

test('Anthropic SDK → Claude on Vertex: the client\'s body passes through with only the Vertex edits; the answer bytes are Anthropic\'s own', async () => {
  const params = { model: 'claude-sonnet-4-5', max_tokens: 5, metadata: { user_id: 'u-1' }, messages: [{ role: 'user' as const, content: 'Hello there' }] }
  const msg = await anthropic.messages.create(params)
  const ex = mock.last()
  const sent = JSON.parse(ex.body) as Record<string, unknown>
  const { model: _m, ...rest } = params
  assert.deepEqual(sent, { anthropic_version: 'vertex-2023-10-16', ...rest })
  const backend = JSON.parse(ex.response) as Anthropic.Message
  assert.deepEqual(msg.content, backend.content)
  assert.deepEqual(msg.usage.output_tokens, backend.usage.output_tokens)
  const raw = await fetch(`${tg.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': TEST_KEY, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' }, body: JSON.stringify(params) })
  assert.equal(await raw.text(), mock.last().response, 'byte for byte')

  const stream = anthropic.messages.stream({ ...params, tools: [WEATHER], tool_choice: { type: 'tool', name: 'get_weather' } })
  const final = await stream.finalMessage()
  assert.equal(final.stop_reason, 'tool_use')
  assert.ok(mock.last().url.endsWith(':streamRawPredict'))
})

test('Claude on Vertex errors: a Vertex quota 429 (Google envelope) → 429 with retry-after for both SDKs; Anthropic\'s 529 overloaded → 5xx', async () => {
  await assert.rejects(openai.chat.completions.create({ model: 'claude-limited', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }), (err: unknown) => {
    assert.ok(err instanceof OpenAI.RateLimitError)
    assert.equal(err.headers.get('retry-after'), '9')
    return true
  })
  assert.equal((JSON.parse(mock.last().response) as { error: { status: string } }).error.status, 'RESOURCE_EXHAUSTED')
  await assert.rejects(anthropic.messages.create({ model: 'claude-limited', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }), (err: unknown) => {
    assert.ok(err instanceof Anthropic.RateLimitError)
    assert.equal(err.headers.get('retry-after'), '9')
    return true
  })
  await assert.rejects(openai.chat.completions.create({ model: 'claude-overloaded', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }), (err: unknown) => err instanceof OpenAI.APIError && (err.status ?? 0) >= 500)
  assert.equal((JSON.parse(mock.last().response) as { error: { type: string } }).error.type, 'overloaded_error')
})
