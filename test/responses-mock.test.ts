import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { encode } from 'gpt-tokenizer/encoding/o200k_base'
import { startMockServer, type MockServer } from '../src/mock/llm.ts'

// The mock's native Responses API, with the official openai SDK as its client: stateful previous_response_id
// (its own store), function calls by the rule of src/mock/tools.ts, streamed events the SDK's helpers accumulate,
// GET and DELETE.
let server: MockServer
let client: OpenAI

before(async () => {
  server = await startMockServer()
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'sk-mock', maxRetries: 0 })
})
after(() => server.close())

const WEATHER = { type: 'function' as const, name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } }, strict: false }

test('previous_response_id continues what the mock stored; an unknown or unstored id is refused as OpenAI does', async () => {
  const r1 = await client.responses.create({ model: 'gpt-4o', input: 'Hello.' })
  const r2 = await client.responses.create({ model: 'gpt-4o', input: 'Hello.', previous_response_id: r1.id })
  // The continued conversation is counted whole: 'Hello.' twice and the first answer (3 per message + 'user'/'assistant' 1).
  assert.equal(r2.usage!.input_tokens, r1.usage!.input_tokens + (3 + 1 + encode(r1.output_text).length) + (3 + 1 + encode('Hello.').length))
  const unstored = await client.responses.create({ model: 'gpt-4o', input: 'Hi.', store: false })
  for (const id of ['resp_unknown', unstored.id]) {
    const err = await client.responses.create({ model: 'gpt-4o', input: 'x', previous_response_id: id }).then(() => null, (e) => e as InstanceType<typeof OpenAI.APIError>)
    assert.equal(err?.status, 400)
    assert.equal(err?.code, 'previous_response_not_found')
  }
})

test('GET and DELETE a stored response', async () => {
  const r = await client.responses.create({ model: 'gpt-4o', input: 'Keep me.' })
  assert.equal((await client.responses.retrieve(r.id)).output_text, r.output_text)
  await client.responses.delete(r.id)
  const err = await client.responses.retrieve(r.id).then(() => null, (e) => e as InstanceType<typeof OpenAI.APIError>)
  assert.equal(err?.status, 404)
})

test('function calls, streamed and not (x-mock-tool-call or a prompt marker)', async () => {
  const r = await client.responses.create({ model: 'gpt-4o', input: 'Weather? [[mock-tool:get_weather {"city":"Oslo"}]]', tools: [WEATHER] })
  const call = r.output[0] as { type: string; name: string; arguments: string; call_id: string }
  assert.deepEqual([call.type, call.name, JSON.parse(call.arguments)], ['function_call', 'get_weather', { city: 'Oslo' }])
  const helper = client.responses.stream({ model: 'gpt-4o', input: 'Weather?', tools: [WEATHER] }, { headers: { 'x-mock-tool-call': 'get_weather', 'x-mock-tool-args': '{"city":"Rome"}' } })
  const final = await helper.finalResponse()
  const streamed = final.output[0] as { type: string; arguments: string; call_id: string }
  assert.deepEqual([streamed.type, JSON.parse(streamed.arguments)], ['function_call', { city: 'Rome' }])
  // The output turn: answered in text, the conversation continued from the mock's own store.
  const next = await client.responses.create({ model: 'gpt-4o', previous_response_id: final.id, input: [{ type: 'function_call_output', call_id: streamed.call_id, output: '21 C' }], tools: [WEATHER] })
  assert.equal(next.output[0]!.type, 'message')
  assert.ok(next.output_text.length > 0)
})
