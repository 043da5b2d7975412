import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { startTestGateway, TEST_KEY, type TestGateway } from '../helpers/gateway.ts'
import { geminiUsageOf, startRecordingMock, type RecordingMock } from '../helpers/recording-mock.ts'
import { ledgerRow as ledgerRowOf } from '../helpers/ledger-row.ts'

// OpenAI SDK → Sluice → the mock speaking Gemini (type: gemini): text, streams, tool calls and results,
// images, thinking, structured output, errors and a fallback to another provider; the ledger holds what
// the Gemini backend reported (usageMetadata), recorded on the wire.

let gem: RecordingMock
let tg: TestGateway
let client: OpenAI
const dir = mkdtempSync(join(tmpdir(), 'sluice-gemini-'))
// 1x1 transparent PNG.
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII='

before(async () => {
  gem = await startRecordingMock()
  tg = await startTestGateway(`
ledger: { type: sqlite, path: ${join(dir, 'ledger.db')}, flushInterval: 20ms }
backends:
  - { id: gem, type: gemini, url: ${gem.url}, auth: { apiKey: AIza-test-key } }
  - { id: gem-429, type: gemini, url: ${gem.url}, auth: { apiKey: AIza-test-key }, headers: { x-mock-status: "429", x-mock-retry-after: "7" } }
  - { id: gem-500, type: gemini, url: ${gem.url}, auth: { apiKey: AIza-test-key }, headers: { x-mock-status: "500" } }
  - { id: gem-503, type: gemini, url: ${gem.url}, auth: { apiKey: AIza-test-key }, headers: { x-mock-status: "503" } }
  - { id: gem-nokey, type: gemini, url: ${gem.url} }
  - { id: gem-midstream, type: gemini, url: ${gem.url}, auth: { apiKey: AIza-test-key }, headers: { x-mock-error-after-tokens: "3" } }
  - { id: oai, type: mock }
pools:
  - id: mixed
    strategy: priority
    members: [ { backend: gem-503, priority: 1 }, { backend: oai, priority: 2 } ]
models:
  - { name: gemini-2.5-flash, target: gem }
  - { name: gemini-limited, target: gem-429, maxAttempts: 1 }
  - { name: gemini-broken, target: gem-500, maxAttempts: 1 }
  - { name: gemini-overloaded, target: gem-503, maxAttempts: 1 }
  - { name: gemini-nokey, target: gem-nokey }
  - { name: gemini-midstream, target: gem-midstream, maxAttempts: 1 }
  - { name: mixed-model, target: mixed }
consumers:
  - { id: team-a, keys: [ { value: ${TEST_KEY} } ] }
`)
  client = new OpenAI({ baseURL: `${tg.url}/v1`, apiKey: TEST_KEY, maxRetries: 0 })
})
after(async () => {
  await tg.close()
  await gem.close()
  rmSync(dir, { recursive: true, force: true })
})

const ledgerRow = (requestId: string) => ledgerRowOf(tg.gw, requestId)

/** Hub usage expected from Gemini's usageMetadata (fixture rule: completion includes thoughts). */
function expectedUsage(u: Record<string, number>) {
  return { prompt: u.promptTokenCount ?? 0, completion: (u.candidatesTokenCount ?? 0) + (u.thoughtsTokenCount ?? 0), reasoning: u.thoughtsTokenCount ?? 0 }
}

function sentBody(): Record<string, any> {
  return JSON.parse(gem.last().body) as Record<string, any>
}

const weatherTool: OpenAI.Chat.ChatCompletionTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: ['string', 'null'], enum: ['C', 'F', null] } }, required: ['city', 'unit'], additionalProperties: false },
  },
}

test('plain text: path, key header, translated body, answer and usage as the backend reported it', async () => {
  const { data, response } = await client.chat.completions.create({
    model: 'gemini-2.5-flash',
    max_tokens: 5,
    temperature: 0.2,
    stop: ['END'],
    messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Say hello' }],
  }).withResponse()
  const ex = gem.last()
  assert.equal(ex.url, '/v1beta/models/gemini-2.5-flash:generateContent')
  assert.equal(ex.headers['x-goog-api-key'], 'AIza-test-key')
  assert.equal(ex.headers.authorization, undefined, 'the Sluice key never reaches the backend')
  assert.deepEqual(sentBody(), {
    contents: [{ role: 'user', parts: [{ text: 'Say hello' }] }],
    systemInstruction: { parts: [{ text: 'Be brief.' }] },
    generationConfig: { maxOutputTokens: 5, temperature: 0.2, stopSequences: ['END'] },
  })
  assert.equal(data.object, 'chat.completion')
  assert.equal(data.model, 'gemini-2.5-flash')
  assert.equal(data.choices[0]!.finish_reason, 'length')
  assert.ok(data.choices[0]!.message.content!.length > 0)
  const u = expectedUsage(geminiUsageOf(ex))
  assert.equal(u.completion, 5)
  assert.equal(data.usage!.prompt_tokens, u.prompt)
  assert.equal(data.usage!.completion_tokens, 5)
  assert.equal(data.usage!.total_tokens, u.prompt + 5)
  const row = await ledgerRow(response.headers.get('x-request-id')!)
  assert.equal(row.backend, 'gem')
  assert.equal(row.promptTokens, u.prompt)
  assert.equal(row.completionTokens, 5)
})

test('streamed text: hub chunks as they arrive, usage chunk when asked, ledger = usageMetadata', async () => {
  const { data: stream, response } = await client.chat.completions.create({
    model: 'gemini-2.5-flash', stream: true, stream_options: { include_usage: true }, max_tokens: 7, messages: [{ role: 'user', content: 'Tell me a story' }],
  }).withResponse()
  let text = ''
  let usage: OpenAI.CompletionUsage | undefined
  let finish: string | null | undefined
  let role: string | undefined
  let chunks = 0
  for await (const chunk of stream) {
    chunks++
    role ??= chunk.choices[0]?.delta?.role
    text += chunk.choices[0]?.delta?.content ?? ''
    finish = chunk.choices[0]?.finish_reason ?? finish
    if (chunk.usage) usage = chunk.usage
  }
  const ex = gem.last()
  assert.equal(ex.url, '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse')
  // What the backend streamed, concatenated, is what the client got.
  let sent = ''
  for (const b of ex.response.split('\r\n\r\n')) if (b.startsWith('data: ')) for (const p of JSON.parse(b.slice(6)).candidates[0].content.parts) sent += p.text ?? ''
  assert.equal(text, sent)
  assert.equal(role, 'assistant')
  assert.equal(finish, 'length')
  assert.ok(chunks >= 9, `7 content chunks, the finish and the usage chunk (got ${chunks})`)
  const u = expectedUsage(geminiUsageOf(ex))
  assert.deepEqual({ p: usage!.prompt_tokens, c: usage!.completion_tokens }, { p: u.prompt, c: 7 })
  const row = await ledgerRow(response.headers.get('x-request-id')!)
  assert.deepEqual({ p: row.promptTokens, c: row.completionTokens, stream: row.stream }, { p: u.prompt, c: 7, stream: true })
})

test('a streamed tool call (Gemini sends it whole) is valid for the SDK stream helpers; the result turn maps back by name with the thought signature', async () => {
  const stream = client.chat.completions.stream({
    model: 'gemini-2.5-flash',
    tool_choice: 'required',
    tools: [weatherTool],
    messages: [{ role: 'user', content: 'Weather in Paris?' }],
  })
  const deltas: string[] = []
  stream.on('tool_calls.function.arguments.delta', (e) => deltas.push(e.arguments_delta))
  const final = await stream.finalChatCompletion()
  const sent = sentBody()
  assert.deepEqual(sent.toolConfig, { functionCallingConfig: { mode: 'ANY' } })
  assert.deepEqual(sent.tools, [{ functionDeclarations: [{ name: 'get_weather', description: 'Weather in a city', parameters: { type: 'OBJECT', properties: { city: { type: 'STRING' }, unit: { type: 'STRING', nullable: true, enum: ['C', 'F'] } }, required: ['city', 'unit'] } }] }])
  const choice = final.choices[0]!
  assert.equal(choice.finish_reason, 'tool_calls')
  const call = choice.message.tool_calls![0]! as OpenAI.Chat.ChatCompletionMessageFunctionToolCall & { extra_content?: { google?: { thought_signature?: string } } }
  assert.equal(call.function.name, 'get_weather')
  assert.deepEqual(JSON.parse(call.function.arguments), { city: 'mock', unit: 'C' })
  assert.equal(deltas.join(''), call.function.arguments)
  assert.match(call.id, /^call_/)
  const backendCall = JSON.parse(gem.last().response.split('\r\n\r\n').filter((b) => b.includes('functionCall'))[0]!.slice(6)).candidates[0].content.parts[0]
  assert.equal(call.extra_content?.google?.thought_signature, backendCall.thoughtSignature)

  const res = await client.chat.completions.create({
    model: 'gemini-2.5-flash',
    tools: [weatherTool],
    messages: [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: null, tool_calls: [call] } as OpenAI.Chat.ChatCompletionAssistantMessageParam,
      { role: 'tool', tool_call_id: call.id, content: '{"temp":21}' },
      { role: 'tool', tool_call_id: call.id, content: 'and sunny' },
    ],
  })
  const back = sentBody().contents
  assert.deepEqual(back[1], { role: 'model', parts: [{ functionCall: { name: 'get_weather', args: { city: 'mock', unit: 'C' } }, thoughtSignature: backendCall.thoughtSignature }] })
  assert.deepEqual(back[2], { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: { temp: 21 } } }, { functionResponse: { name: 'get_weather', response: { output: 'and sunny' } } }] })
  assert.equal(res.choices[0]!.finish_reason, 'stop')
  assert.ok(res.choices[0]!.message.content)
})

test('parallel tool calls and a named tool_choice', async () => {
  const res = await client.chat.completions.create({
    model: 'gemini-2.5-flash',
    tools: [weatherTool, { type: 'function', function: { name: 'noop', parameters: { type: 'object', properties: {} } } }],
    tool_choice: { type: 'function', function: { name: 'get_weather' } },
    messages: [{ role: 'user', content: 'Weather?' }],
  })
  const sent = sentBody()
  assert.deepEqual(sent.toolConfig, { functionCallingConfig: { mode: 'ANY', allowedFunctionNames: ['get_weather'] } })
  assert.deepEqual(sent.tools[0].functionDeclarations[1], { name: 'noop' }, 'a function without arguments has no parameters')
  assert.equal(res.choices[0]!.message.tool_calls!.length, 1)
})

test('an image input: data: URL → inlineData, an https URL → fileData; a URL without a type is a 400', async () => {
  const { data, response } = await client.chat.completions.create({
    model: 'gemini-2.5-flash', max_tokens: 3,
    messages: [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }, { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg' } }] }],
  }).withResponse()
  assert.deepEqual(sentBody().contents[0].parts, [{ text: 'What is this?' }, { inlineData: { mimeType: 'image/png', data: PNG } }, { fileData: { mimeType: 'image/jpeg', fileUri: 'https://example.com/cat.jpg' } }])
  const u = expectedUsage(geminiUsageOf(gem.last()))
  // The mock counts an image as 258 tokens, like Gemini: two images and "What is this?" (4 tokens).
  assert.equal(u.prompt, 2 * 258 + 4)
  assert.equal(data.usage!.prompt_tokens, u.prompt)
  assert.equal((await ledgerRow(response.headers.get('x-request-id')!)).promptTokens, u.prompt)

  const before = gem.exchanges.length
  await assert.rejects(client.chat.completions.create({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/picture' } }] }] }), (err: unknown) => {
    assert.ok(err instanceof OpenAI.BadRequestError)
    assert.equal(err.param, 'messages[0].content[0].image_url.url')
    return true
  })
  assert.equal(gem.exchanges.length, before, 'refused before reaching the backend')
})

test('thinking: reasoning_effort → thinkingConfig; thoughts → reasoning_content; completion includes thought tokens', async () => {
  const { data, response } = await client.chat.completions.create({ model: 'gemini-2.5-flash', max_tokens: 4, reasoning_effort: 'low', messages: [{ role: 'user', content: 'Think first' }] }).withResponse()
  assert.deepEqual(sentBody().generationConfig, { maxOutputTokens: 4, thinkingConfig: { thinkingBudget: 1024, includeThoughts: true } })
  const msg = data.choices[0]!.message as OpenAI.Chat.ChatCompletionMessage & { reasoning_content?: string }
  assert.ok(msg.reasoning_content && msg.reasoning_content.length > 0)
  const um = geminiUsageOf(gem.last())
  assert.equal(um.thoughtsTokenCount, 6)
  assert.equal(data.usage!.completion_tokens, 4 + 6)
  assert.equal(data.usage!.completion_tokens_details!.reasoning_tokens, 6)
  const row = await ledgerRow(response.headers.get('x-request-id')!)
  assert.deepEqual({ c: row.completionTokens, r: row.reasoningTokens }, { c: 10, r: 6 })

  // Streamed: reasoning deltas come first.
  const stream = await client.chat.completions.create({ model: 'gemini-2.5-flash', stream: true, max_tokens: 2, thinking: { type: 'enabled', budget_tokens: 2048 }, messages: [{ role: 'user', content: 'Think' }] } as OpenAI.Chat.ChatCompletionCreateParamsStreaming)
  const order: string[] = []
  for await (const c of stream) {
    const d = c.choices[0]?.delta as { content?: string; reasoning_content?: string } | undefined
    if (d?.reasoning_content) order.push('r')
    if (d?.content) order.push('c')
  }
  assert.equal(order.join(''), 'rrrrrrcc')
})

test('structured output: json_schema → responseMimeType + responseSchema; what the subset cannot say goes as JSON Schema; a malformed schema is a 400', async () => {
  await client.chat.completions.create({
    model: 'gemini-2.5-flash', max_tokens: 3,
    response_format: { type: 'json_schema', json_schema: { name: 'x', strict: true, schema: { $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'object', properties: { n: { $ref: '#/$defs/num' }, tag: { const: 'a' } }, required: ['n'], $defs: { num: { type: 'integer', exclusiveMinimum: 0 } } } } },
    messages: [{ role: 'user', content: 'JSON please' }],
  })
  assert.deepEqual(sentBody().generationConfig, {
    maxOutputTokens: 3,
    responseMimeType: 'application/json',
    responseSchema: { type: 'OBJECT', properties: { n: { type: 'INTEGER', minimum: 0 }, tag: { enum: ['a'], type: 'STRING' } }, required: ['n'] },
  })
  // What the subset cannot express goes as JSON Schema (parametersJsonSchema), whole and unchanged.
  const mapSchema = { type: 'object', properties: { tags: { type: 'object', additionalProperties: { type: 'string' }, propertyNames: { pattern: '^[a-z]+$' } } } }
  await client.chat.completions.create({ model: 'gemini-2.5-flash', max_tokens: 2, tools: [{ type: 'function', function: { name: 'f', parameters: mapSchema } }], messages: [{ role: 'user', content: 'x' }] })
  assert.deepEqual(sentBody().tools, [{ functionDeclarations: [{ name: 'f', parametersJsonSchema: mapSchema }] }])
  // A malformed schema is a 400 naming where it is, before the backend.
  const before = gem.exchanges.length
  await assert.rejects(client.chat.completions.create({
    model: 'gemini-2.5-flash',
    tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { a: { type: 'strin' } } } } }],
    messages: [{ role: 'user', content: 'x' }],
  }), (err: unknown) => err instanceof OpenAI.BadRequestError && err.param === 'tools[0].function.parameters.properties.a.type' && /strin/.test(err.message))
  assert.equal(gem.exchanges.length, before)
})

test('bad input: an unknown content part is a 400 naming it, with a ledger row', async () => {
  const { response } = await client.chat.completions.create({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'ok' }] }).withResponse()
  assert.equal(response.status, 200, 'the same model answers a good request')
  const res = await fetch(`${tg.url}/v1/chat/completions`, {
    method: 'POST', headers: { authorization: `Bearer ${TEST_KEY}`, 'content-type': 'application/json', 'x-request-id': 'gem-bad-part' },
    body: JSON.stringify({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: [{ type: 'hologram', hologram: {} }] }] }),
  })
  assert.equal(res.status, 400)
  const body = (await res.json()) as { error: { param: string; code: string } }
  assert.equal(body.error.param, 'messages[0].content[0].type')
  const row = await ledgerRow('gem-bad-part')
  assert.equal(row.status, 400)
})

test('safe omissions are named in x-sluice-omitted; a field Gemini cannot keep is a 400', async () => {
  const { response } = await client.chat.completions.create({ model: 'gemini-2.5-flash', max_tokens: 2, user: 'u-1', parallel_tool_calls: false, messages: [{ role: 'user', content: 'x' }] }).withResponse()
  assert.equal(response.headers.get('x-sluice-omitted'), 'user,parallel_tool_calls')
  assert.equal(sentBody().user, undefined)
  await assert.rejects(client.chat.completions.create({ model: 'gemini-2.5-flash', logit_bias: { '1': 2 }, messages: [{ role: 'user', content: 'x' }] }), (err: unknown) => err instanceof OpenAI.BadRequestError && err.param === 'logit_bias')
})

test('errors: 429 RESOURCE_EXHAUSTED with RetryInfo → 429 with retry-after; 500 → 502; 503 UNAVAILABLE → 502; a refused key', async () => {
  await assert.rejects(client.chat.completions.create({ model: 'gemini-limited', messages: [{ role: 'user', content: 'x' }] }), (err: unknown) => {
    assert.ok(err instanceof OpenAI.RateLimitError)
    assert.equal(err.headers.get('retry-after'), '7')
    return true
  })
  // The wait came in the body (google.rpc.RetryInfo), as Google sends it; the mock sets no retry-after header.
  const rpc = JSON.parse(gem.last().response) as { error: { status: string; details: Array<Record<string, string>> } }
  assert.equal(rpc.error.status, 'RESOURCE_EXHAUSTED')
  assert.equal(rpc.error.details.find((d) => d['@type']!.endsWith('google.rpc.RetryInfo'))!.retryDelay, '7s')
  await assert.rejects(client.chat.completions.create({ model: 'gemini-broken', messages: [{ role: 'user', content: 'x' }] }), (err: unknown) => err instanceof OpenAI.APIError && err.status === 502)
  await assert.rejects(client.chat.completions.create({ model: 'gemini-overloaded', messages: [{ role: 'user', content: 'x' }] }), (err: unknown) => err instanceof OpenAI.APIError && err.status === 502)
  await assert.rejects(client.chat.completions.create({ model: 'gemini-nokey', messages: [{ role: 'user', content: 'x' }] }), (err: unknown) => err instanceof OpenAI.APIError && err.status === 502 && /credentials/.test(err.message))
})

test('fallback across providers mid-pool: Gemini 503 → the OpenAI-speaking member answers', async () => {
  const { data, response } = await client.chat.completions.create({ model: 'mixed-model', max_tokens: 4, messages: [{ role: 'user', content: 'hello' }] }).withResponse()
  assert.equal(response.headers.get('x-sluice-backend'), 'oai')
  assert.equal(gem.last().status, 503)
  assert.equal(data.usage!.completion_tokens, 4)
  const stream = await client.chat.completions.create({ model: 'mixed-model', stream: true, max_tokens: 3, messages: [{ role: 'user', content: 'hello' }] })
  let text = ''
  for await (const c of stream) text += c.choices[0]?.delta?.content ?? ''
  assert.ok(text.length > 0)
  const row = await ledgerRow(response.headers.get('x-request-id')!)
  assert.deepEqual({ backend: row.backend, attempts: row.attempts, c: row.completionTokens }, { backend: 'oai', attempts: 2, c: 4 })
})

test('a malformed backend event is a clean failure with a ledger row; the process lives on', async () => {
  gem.override = (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.end('data: {not json\r\n\r\n')
    return true
  }
  try {
    const res = await fetch(`${tg.url}/v1/chat/completions`, {
      method: 'POST', headers: { authorization: `Bearer ${TEST_KEY}`, 'content-type': 'application/json', 'x-request-id': 'gem-malformed' },
      body: JSON.stringify({ model: 'gemini-broken', stream: true, messages: [{ role: 'user', content: 'x' }] }),
    })
    // Before any content: the gateway answers an error status (nothing was committed to the client).
    assert.equal(res.status, 502)
    await res.arrayBuffer()
  } finally {
    gem.override = null
  }
  const row = await ledgerRow('gem-malformed')
  assert.equal(row.status, 502)
  const ok = await client.chat.completions.create({ model: 'gemini-2.5-flash', max_tokens: 2, messages: [{ role: 'user', content: 'still there?' }] })
  assert.equal(ok.usage!.completion_tokens, 2)
})

test('an error event from Gemini after content reached the client: the stream ends with the kernel\'s error event', async () => {
  const res = await fetch(`${tg.url}/v1/chat/completions`, {
    method: 'POST', headers: { authorization: `Bearer ${TEST_KEY}`, 'content-type': 'application/json', 'x-request-id': 'gem-midstream' },
    body: JSON.stringify({ model: 'gemini-midstream', stream: true, max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }),
  })
  assert.equal(res.status, 200)
  const text = await res.text()
  const events = text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice(6))
  const contents = events.filter((e) => e.startsWith('{') && (JSON.parse(e) as { choices?: Array<{ delta?: { content?: string } }> }).choices?.[0]?.delta?.content)
  assert.equal(contents.length, 3, 'the three tokens before the error')
  assert.ok(events.some((e) => e.startsWith('{') && 'error' in (JSON.parse(e) as object)), 'an error event ends the stream')
  assert.ok(!text.includes('AIza'), 'no key in the stream')
  const row = await ledgerRow('gem-midstream')
  assert.equal(row.backend, 'gem-midstream')
})
