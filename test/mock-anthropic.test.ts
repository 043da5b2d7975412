import { test, after, before } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import Anthropic from '@anthropic-ai/sdk'
import { encode } from 'gpt-tokenizer'
import { startMockServer, type MockServer } from '../src/mock/llm.ts'
import { SseParser } from '../src/core/sse.ts'

// The official Anthropic SDK as the mock's client: what it accepts is what the real API looks like to it.
let server: MockServer
let client: Anthropic

before(async () => {
  server = await startMockServer({ port: 0 })
  client = new Anthropic({ apiKey: 'sk-ant-mock', baseURL: server.url, maxRetries: 0 })
})
after(async () => {
  await server.close()
})

const tok = (s: string) => encode(s).length
const WEATHER = { name: 'get_weather', description: 'Weather of a city', input_schema: { type: 'object' as const, properties: { city: { type: 'string' } }, required: ['city'] } }

test('a plain message: text, stop reason and usage with the mock tokenizer', async () => {
  const msg = await client.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 8, messages: [{ role: 'user', content: 'Hello there' }] })
  assert.equal(msg.type, 'message')
  assert.equal(msg.role, 'assistant')
  assert.equal(msg.content.length, 1)
  assert.equal(msg.content[0]!.type, 'text')
  assert.equal(msg.stop_reason, 'max_tokens')
  // 3 per message + the text's tokens; 8 output tokens (the max).
  assert.equal(msg.usage.input_tokens, 3 + tok('Hello there'))
  assert.equal(msg.usage.output_tokens, 8)
  assert.equal(tok((msg.content[0] as Anthropic.TextBlock).text), 8)
})

test('a stream via .stream() frames exactly like Anthropic and finalMessage() equals the JSON answer', async () => {
  const params = { model: 'claude-sonnet-4-5', max_tokens: 6, messages: [{ role: 'user' as const, content: 'Tell me about rivers' }] }
  const json = await client.messages.create(params)
  const stream = client.messages.stream(params)
  const types: string[] = []
  stream.on('streamEvent', (e) => types.push(e.type))
  const final = await stream.finalMessage()
  assert.deepEqual(final.content, json.content)
  assert.deepEqual(final.usage, json.usage)
  assert.equal(final.stop_reason, 'max_tokens')
  assert.deepEqual(types, ['message_start', 'content_block_start', ...Array(6).fill('content_block_delta'), 'content_block_stop', 'message_delta', 'message_stop'])
})

test('the raw stream has the event order of the SDK fixture (ping after the first block start)', async () => {
  const fixture = readFileSync(new URL('./fixtures/providers/anthropic/basic_response.sse', import.meta.url), 'utf8')
  const order = (text: string) => new SseParser().push(text).map((f) => f.event).filter((e, i, a) => e !== a[i - 1])
  const res = await fetch(server.url + '/v1/messages', {
    method: 'POST',
    headers: { 'x-api-key': 'k', 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm', max_tokens: 3, stream: true, messages: [{ role: 'user', content: 'hi' }] }),
  })
  assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8')
  const text = await res.text()
  assert.deepEqual(order(text), order(fixture))
  for (const f of new SseParser().push(text)) assert.equal(JSON.parse(f.data).type, f.event) // event name = data type
})

test('tool use on request: a streamed tool_use with its input over many input_json_delta events', async () => {
  const args = { city: 'Paris, the capital of France' }
  const stream = client.messages.stream(
    { model: 'm', max_tokens: 100, tools: [WEATHER], messages: [{ role: 'user', content: 'Weather?' }] },
    { headers: { 'x-mock-tool-call': 'get_weather', 'x-mock-tool-args': JSON.stringify(args) } },
  )
  let pieces = 0
  stream.on('inputJson', () => pieces++)
  const final = await stream.finalMessage()
  assert.equal(final.stop_reason, 'tool_use')
  const use = final.content.find((b) => b.type === 'tool_use') as Anthropic.ToolUseBlock
  assert.equal(use.name, 'get_weather')
  assert.deepEqual(use.input, args)
  assert.match(use.id, /^toolu_/)
  assert.ok(pieces >= 4, `arguments came in ${pieces} pieces`)
  assert.equal(final.usage.output_tokens, tok('get_weather') + tok(JSON.stringify(args)))
})

test('tool_choice any forces a call; the tool result turn gets text back', async () => {
  const first = await client.messages.create({ model: 'm', max_tokens: 20, tools: [WEATHER], tool_choice: { type: 'any' }, messages: [{ role: 'user', content: 'Weather in Paris?' }] })
  const use = first.content[0] as Anthropic.ToolUseBlock
  assert.equal(use.type, 'tool_use')
  assert.deepEqual(use.input, { city: 'mock' }) // made from the schema's required property
  const second = await client.messages.create({
    model: 'm', max_tokens: 5, tools: [WEATHER],
    messages: [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: first.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'sunny' }] },
    ],
  }, { headers: { 'x-mock-tool-call': 'get_weather' } })
  assert.equal(second.content[0]!.type, 'text')
  assert.equal(second.stop_reason, 'max_tokens')
})

test('a prompt marker asks for a call (what an agent can carry), parallel calls by header', async () => {
  const marked = await client.messages.create({ model: 'm', max_tokens: 20, tools: [WEATHER], messages: [{ role: 'user', content: 'go [[mock-tool:get_weather {"city":"Oslo"}]]' }] })
  assert.deepEqual((marked.content[0] as Anthropic.ToolUseBlock).input, { city: 'Oslo' })
  const plain = await client.messages.create({ model: 'm', max_tokens: 3, tools: [WEATHER], messages: [{ role: 'user', content: 'go' }] })
  assert.equal(plain.content[0]!.type, 'text')
  const two = await client.messages.create({ model: 'm', max_tokens: 20, tools: [WEATHER], messages: [{ role: 'user', content: 'go' }] }, { headers: { 'x-mock-tool-call': 'get_weather', 'x-mock-tool-calls': '2' } })
  assert.equal(two.content.filter((b) => b.type === 'tool_use').length, 2)
})

test('thinking blocks carry a signature that must come back unchanged', async () => {
  const params = { model: 'm', max_tokens: 50, thinking: { type: 'enabled' as const, budget_tokens: 1024 }, messages: [{ role: 'user' as const, content: 'Think' }] }
  const final = await client.messages.stream(params).finalMessage()
  const thinking = final.content[0] as Anthropic.ThinkingBlock
  assert.equal(thinking.type, 'thinking')
  assert.ok(thinking.thinking.length > 0 && thinking.signature.length > 0)
  const next = (signature: string) => client.messages.create({ ...params, messages: [...params.messages, { role: 'assistant', content: [{ ...thinking, signature }, ...final.content.slice(1)] }, { role: 'user', content: 'More' }] })
  const ok = await next(thinking.signature)
  assert.equal(ok.content[0]!.type, 'thinking')
  await assert.rejects(next(thinking.signature.slice(1)), (e: unknown) => e instanceof Anthropic.BadRequestError && /signature/.test(e.message))
})

test('prompt caching usage from cache_control marks: writes, then reads with x-mock-cache-hit', async () => {
  const system = [{ type: 'text' as const, text: 'You are a careful assistant who answers briefly.', cache_control: { type: 'ephemeral' as const } }]
  const params = { model: 'm', max_tokens: 2, system, messages: [{ role: 'user' as const, content: 'Hi' }] }
  const cachedPart = tok(system[0]!.text)
  const rest = 3 + tok('Hi')
  const write = await client.messages.create(params)
  assert.deepEqual([write.usage.input_tokens, write.usage.cache_creation_input_tokens, write.usage.cache_read_input_tokens], [rest, cachedPart, 0])
  const read = await client.messages.create(params, { headers: { 'x-mock-cache-hit': '1' } })
  assert.deepEqual([read.usage.input_tokens, read.usage.cache_creation_input_tokens, read.usage.cache_read_input_tokens], [rest, 0, cachedPart])
  const none = await client.messages.create({ ...params, system: 'no marks' })
  assert.equal(none.usage.cache_creation_input_tokens, 0)
})

test('stop sequences end the text before them', async () => {
  const free = await client.messages.create({ model: 'm', max_tokens: 12, messages: [{ role: 'user', content: 'Stop' }] })
  const text = (free.content[0] as Anthropic.TextBlock).text
  const word = text.split(' ')[3]!
  const cut = await client.messages.create({ model: 'm', max_tokens: 12, stop_sequences: [word], messages: [{ role: 'user', content: 'Stop' }] })
  assert.equal(cut.stop_reason, 'stop_sequence')
  assert.equal(cut.stop_sequence, word)
  assert.equal((cut.content[0] as Anthropic.TextBlock).text, text.slice(0, text.indexOf(word)))
})

test('errors in Anthropic shapes: 529 overloaded, 429 with retry-after, 401 without a key, in-stream error', async () => {
  const req = { model: 'm', max_tokens: 5, messages: [{ role: 'user' as const, content: 'x' }] }
  await assert.rejects(client.messages.create(req, { headers: { 'x-mock-status': '529' } }), (e: any) => e.status === 529 && e.error?.error?.type === 'overloaded_error')
  await assert.rejects(client.messages.create(req, { headers: { 'x-mock-status': '429', 'x-mock-retry-after': '7' } }), (e: any) => e?.status === 429 && e.headers.get('retry-after') === '7' && e.error?.error?.type === 'rate_limit_error')
  const noKey = await fetch(server.url + '/v1/messages', { method: 'POST', headers: { 'anthropic-version': '2023-06-01' }, body: JSON.stringify(req) })
  assert.equal(noKey.status, 401)
  assert.equal(((await noKey.json()) as any).error.type, 'authentication_error')
  const keyed = await client.messages.create(req)
  assert.equal(keyed.type, 'message') // the same request with a key passes
  const stream = client.messages.stream(req, { headers: { 'x-mock-error-after-tokens': '2' } })
  await assert.rejects(stream.finalMessage(), (e: any) => /overloaded/i.test(String(e?.message ?? e)))
})

test('a configured key is the only one accepted; count_tokens answers input_tokens', async () => {
  const strict = await startMockServer({ port: 0, anthropicApiKey: 'sk-ant-right' })
  try {
    const wrong = new Anthropic({ apiKey: 'sk-ant-wrong', baseURL: strict.url, maxRetries: 0 })
    await assert.rejects(wrong.messages.create({ model: 'm', max_tokens: 1, messages: [{ role: 'user', content: 'x' }] }), Anthropic.AuthenticationError)
    const right = new Anthropic({ apiKey: 'sk-ant-right', baseURL: strict.url, maxRetries: 0 })
    assert.equal((await right.messages.create({ model: 'm', max_tokens: 1, messages: [{ role: 'user', content: 'x' }] })).type, 'message')
    const counted = await right.messages.countTokens({ model: 'm', messages: [{ role: 'user', content: 'Hello there' }] })
    assert.equal(counted.input_tokens, 3 + tok('Hello there'))
  } finally {
    await strict.close()
  }
})
