import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI, { AzureOpenAI } from 'openai'
import { BASIC_YAML, startTestGateway, TEST_KEY, TEST_KEY_B, type TestGateway } from './helpers/gateway.ts'

let tg: TestGateway
let client: OpenAI

before(async () => {
  tg = await startTestGateway(BASIC_YAML)
  client = new OpenAI({ baseURL: `${tg.url}/v1`, apiKey: TEST_KEY, maxRetries: 0 })
})
after(() => tg.close())

test('chat completion through the gateway, as the official SDK sees it', async () => {
  const { data, response } = await client.chat.completions
    .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello' }] })
    .withResponse()
  assert.equal(data.object, 'chat.completion')
  assert.equal(data.model, 'gpt-4o-mini')
  assert.ok(data.choices[0]!.message.content!.length > 0)
  // By hand (o200k_base): 'Say hello' = Say| hello = 2, 'user' = 1; 3 framing + 3 priming: 9. The mock writes 16 by default.
  assert.deepEqual([data.usage!.prompt_tokens, data.usage!.completion_tokens, data.usage!.total_tokens], [9, 16, 25])
  assert.equal(response.headers.get('x-sluice-backend'), 'mock-a')
  assert.ok(response.headers.get('x-request-id'))
})

test('streamed chat completion: chunks, and usage only when asked', async () => {
  const plain = await client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'Tell me a story' }] })
  let text = ''
  let sawUsage = false
  for await (const chunk of plain) {
    text += chunk.choices[0]?.delta?.content ?? ''
    if (chunk.usage) sawUsage = true
  }
  assert.ok(text.length > 0)
  assert.equal(sawUsage, false, 'the usage chunk the gateway asked for must not reach a client that did not ask')

  const withUsage = await client.chat.completions.create({
    model: 'gpt-4o-mini', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'Tell me a story' }],
  })
  let usage: OpenAI.CompletionUsage | null | undefined
  for await (const chunk of withUsage) if (chunk.usage) usage = chunk.usage
  // 'Tell me a story' = Tell| me| a| story = 4: prompt 3 + 3 + 1 + 4 = 11; 16 completion tokens by default.
  assert.deepEqual([usage?.prompt_tokens, usage?.completion_tokens], [11, 16])
})

test('embeddings (the SDK asks for base64 by default)', async () => {
  const res = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['hello world', 'goodbye'] })
  assert.equal(res.data.length, 2)
  assert.ok(res.data[0]!.embedding.length > 0)
  // 'hello world' = hello| world = 2, 'goodbye' = good|bye = 2.
  assert.equal(res.usage.prompt_tokens, 4)
})

test('legacy completions and the Responses API', async () => {
  const c = await client.completions.create({ model: 'gpt-4o-mini', prompt: 'Once upon a time', max_tokens: 5 })
  assert.equal(c.usage!.completion_tokens, 5)
  const r = await client.responses.create({ model: 'gpt-4o-mini', input: 'Write a haiku' })
  assert.ok(r.output_text.length > 0)
  assert.equal(r.usage!.output_tokens, 16)
  // 'Write a haiku' = Write| a| ha|iku = 4, as one user message: 3 + 3 + 1 + 4 = 11.
  assert.equal(r.usage!.input_tokens, 11)
  const stream = await client.responses.create({ model: 'gpt-4o-mini', input: 'Write a haiku', stream: true })
  let deltas = ''
  let completed = false
  for await (const ev of stream) {
    if (ev.type === 'response.output_text.delta') deltas += ev.delta
    if (ev.type === 'response.completed') completed = true
  }
  assert.ok(deltas.length > 0 && completed)
})

test('models list shows only what the caller may use', async () => {
  const all = await client.models.list()
  assert.deepEqual(all.data.map((m) => m.id).sort(), ['gpt-4o-mini', 'text-embedding-3-small'])
  const embedOnly = new OpenAI({ baseURL: `${tg.url}/v1`, apiKey: TEST_KEY_B, maxRetries: 0 })
  const some = await embedOnly.models.list()
  assert.deepEqual(some.data.map((m) => m.id), ['text-embedding-3-small'])
})

test('errors reach the SDK as the right error classes with OpenAI codes', async () => {
  const bad = new OpenAI({ baseURL: `${tg.url}/v1`, apiKey: 'sk-wrong-key', maxRetries: 0 })
  await assert.rejects(bad.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }), (err: unknown) => {
    assert.ok(err instanceof OpenAI.AuthenticationError)
    assert.equal(err.code, 'invalid_api_key')
    return true
  })
  await assert.rejects(client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }), (err: unknown) => {
    assert.ok(err instanceof OpenAI.NotFoundError)
    assert.equal(err.code, 'model_not_found')
    return true
  })
  const embedOnly = new OpenAI({ baseURL: `${tg.url}/v1`, apiKey: TEST_KEY_B, maxRetries: 0 })
  await assert.rejects(embedOnly.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }), (err: unknown) => {
    assert.ok(err instanceof OpenAI.PermissionDeniedError)
    assert.equal(err.code, 'model_not_allowed')
    return true
  })
})

test('the Azure OpenAI front door and client work against the gateway', async () => {
  const azure = new AzureOpenAI({ endpoint: tg.url, apiKey: TEST_KEY, apiVersion: '2024-10-21', deployment: 'gpt-4o-mini', maxRetries: 0 })
  const res = await azure.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
  assert.ok(res.choices[0]!.message.content)
  const emb = await new AzureOpenAI({ endpoint: tg.url, apiKey: TEST_KEY, apiVersion: '2024-10-21', deployment: 'text-embedding-3-small', maxRetries: 0 })
    .embeddings.create({ model: 'text-embedding-3-small', input: 'hi' })
  assert.equal(emb.data.length, 1)
})
