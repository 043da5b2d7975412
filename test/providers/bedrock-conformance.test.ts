// Conformance: OpenAI SDK → Sluice → (SigV4-signed) mock Bedrock. A recording proxy between the gateway and
// the mock decodes what the backend really reported (usage from Converse bodies and from ConverseStream
// `metadata` events, decoded here with @smithy/eventstream-codec, not the gateway's parser), so the ledger
// is checked against the backend, not against the gateway's own translation.
process.env.AWS_EC2_METADATA_DISABLED = 'true'

import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { encode } from 'gpt-tokenizer/encoding/o200k_base'
import { startMockServer, type MockServer } from '../../src/mock/llm.ts'
import type { UsageRecord } from '../../src/stores/ledger.ts'
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts'
import { recordingProxy, type Reported } from '../helpers/bedrock.ts'

const KEY = 'sk-bedrock-conformance'
const MODEL_ID = 'anthropic.claude-3-5-sonnet-20240620-v1:0'
const ARN = 'arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0'
const STATIC = '{ accessKeyId: AKIDEXAMPLE, secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }'
const TEMP = '{ accessKeyId: ASIAMOCKTEMPORARY, secretAccessKey: tEmPoRaRySeCrEtKeYfOrThEsLuIcEmOcK00000, sessionToken: "IQoJb3JpZ2luX2VjEMOCK//session+token/for=sluice" }'
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=='

const dir = mkdtempSync(join(tmpdir(), 'sluice-bedrock-conf-'))
let mock: MockServer
let proxy: Awaited<ReturnType<typeof recordingProxy>>
let tg: TestGateway
let client: OpenAI
let n = 0

const bedrock = (id: string, extra = '', auth = STATIC) => `  - { id: ${id}, type: bedrock, region: us-east-1, url: PROXY, auth: { awsSigV4: ${auth} }, models: { claude: "${MODEL_ID}", claude-arn: "${ARN}", claude-temp: "${MODEL_ID}" }${extra} }`

function yaml(proxyUrl: string, mockUrl: string): string {
  return `
ledger: { type: sqlite, path: ${join(dir, 'ledger.db')}, flushInterval: 50ms }
backends:
${bedrock('bed', ', headers: { x-mock-completion-tokens: "6" }')}
${bedrock('bed-temp', ', headers: { x-mock-completion-tokens: "4" }', TEMP)}
${bedrock('bed-429', ', headers: { x-mock-status: "429", x-mock-retry-after: "2" }')}
${bedrock('bed-503', ', headers: { x-mock-status: "503" }')}
${bedrock('bed-crc-late', ', headers: { x-mock-bad-crc-after-tokens: "3", x-mock-completion-tokens: "8" }')}
${bedrock('bed-crc-early', ', headers: { x-mock-bad-crc-after-tokens: "0" }')}
${bedrock('bed-throttle-stream', ', headers: { x-mock-error-after-tokens: "0", x-mock-stream-exception: throttlingException }')}
${bedrock('bed-badkey', '', '{ accessKeyId: AKIDEXAMPLE, secretAccessKey: not-the-secret }')}
  - { id: oai, type: openai-compatible, url: ${mockUrl}/v1, headers: { x-mock-completion-tokens: "5" } }
pools:
  - { id: throttled-pool, strategy: priority, members: [ { backend: bed-429, priority: 1 }, { backend: bed, priority: 2 } ] }
  - { id: mixed-pool, strategy: priority, members: [ { backend: bed-503, priority: 1 }, { backend: oai, priority: 2 } ] }
  - { id: crc-pool, strategy: priority, members: [ { backend: bed-crc-early, priority: 1 }, { backend: oai, priority: 2 } ] }
  - { id: exc-pool, strategy: priority, members: [ { backend: bed-throttle-stream, priority: 1 }, { backend: bed, priority: 2 } ] }
models:
  - { name: claude, target: bed }
  - { name: claude-arn, target: bed }
  - { name: claude-temp, target: bed-temp }
  - { name: claude-throttled, target: throttled-pool }
  - { name: claude-429, target: bed-429, maxAttempts: 1 }
  - { name: claude-503, target: bed-503, maxAttempts: 1 }
  - { name: claude-mixed, target: mixed-pool }
  - { name: claude-crc-late, target: bed-crc-late }
  - { name: claude-crc-early, target: crc-pool }
  - { name: claude-exc, target: exc-pool }
  - { name: claude-denied, target: bed-badkey, maxAttempts: 1 }
consumers:
  - { id: team, keys: [ { value: ${KEY} } ] }
`.replaceAll('PROXY', proxyUrl)
}

const userText = 'Tell me about the river.'
const tools: OpenAI.ChatCompletionTool[] = [{ type: 'function', function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city'] } } }]

async function records(ids: string[]): Promise<Map<string, UsageRecord>> {
  assert.equal(await tg.gw.ledger!.flush(10_000), true)
  const rows = await tg.gw.ledger!.store.records({ requestIds: ids })
  return new Map(rows.map((r) => [r.requestId, r]))
}

/** A request id the ledger can be searched by, and the proxy's records made during the call. */
async function call<T>(fn: (headers: Record<string, string>) => Promise<T>): Promise<{ id: string; out: T; reported: Reported[] }> {
  const id = `bedrock-conf-${++n}`
  const before = proxy.seen.length
  const out = await fn({ 'x-request-id': id })
  return { id, out, reported: proxy.seen.slice(before) }
}

describe('OpenAI SDK → Sluice → Bedrock (mock, SigV4)', () => {
  before(async () => {
    mock = await startMockServer()
    proxy = await recordingProxy(mock.url)
    tg = await startTestGateway(yaml(proxy.url, mock.url))
    client = new OpenAI({ baseURL: `${tg.url}/v1`, apiKey: KEY, maxRetries: 0 })
  })
  after(async () => {
    await tg?.close()
    await proxy?.close()
    await mock?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('plain text: a signed Converse call, the answer and usage the backend reported (ledger too)', async () => {
    const { id, out, reported } = await call((headers) => client.chat.completions.create({ model: 'claude', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: userText }] }, { headers }).withResponse())
    const { data, response } = out
    assert.equal(response.headers.get('x-sluice-backend'), 'bed')
    assert.equal(reported.length, 1)
    assert.equal(reported[0]!.path, `/model/${encodeURIComponent(MODEL_ID)}/converse`)
    assert.match(reported[0]!.auth, /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/us-east-1\/bedrock\/aws4_request/)
    assert.equal(data.object, 'chat.completion')
    assert.equal(data.model, 'claude')
    assert.equal(encode(data.choices[0]!.message.content!).length, 6)
    assert.equal(data.choices[0]!.finish_reason, 'stop')
    const expectedPrompt = encode('Be brief.').length + encode(userText).length
    assert.equal(reported[0]!.input, expectedPrompt)
    assert.deepEqual([data.usage!.prompt_tokens, data.usage!.completion_tokens], [expectedPrompt, 6])
    const row = (await records([id])).get(id)!
    assert.deepEqual([row.backend, row.status, row.promptTokens, row.completionTokens, row.stream, row.errorCode], ['bed', 200, reported[0]!.input, reported[0]!.output, false, null])
  })

  it('hints Converse has no place for are dropped and named in x-sluice-omitted; a plain request names none', async () => {
    const { response } = await client.chat.completions.create({ model: 'claude', seed: 7, user: 'u-1', messages: [{ role: 'user', content: userText }] }).withResponse()
    assert.equal(response.headers.get('x-sluice-omitted'), 'seed,user')
    const plain = await client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: userText }] }).withResponse()
    assert.equal(plain.response.headers.get('x-sluice-omitted'), null)
  })

  it('streamed text: event-stream decoded chunk by chunk; usage only when asked; ledger equals the metadata event', async () => {
    const { id, out, reported } = await call(async (headers) => {
      const stream = await client.chat.completions.create({ model: 'claude', stream: true, messages: [{ role: 'user', content: userText }] }, { headers })
      const chunks: OpenAI.ChatCompletionChunk[] = []
      for await (const c of stream) chunks.push(c)
      return chunks
    })
    const text = out.map((c) => c.choices[0]?.delta?.content ?? '').join('')
    assert.equal(out.filter((c) => c.choices[0]?.delta?.content).length, 6)
    assert.equal(encode(text).length, 6)
    assert.equal(out.filter((c) => c.choices[0]?.finish_reason === 'stop').length, 1)
    assert.ok(out.every((c) => !c.usage), 'the client did not ask for usage')
    assert.equal(reported[0]!.path, `/model/${encodeURIComponent(MODEL_ID)}/converse-stream`)
    const row = (await records([id])).get(id)!
    assert.deepEqual([row.promptTokens, row.completionTokens, row.stream], [reported[0]!.input, reported[0]!.output, true])
    assert.equal(row.promptTokens, encode(userText).length)

    const withUsage = await client.chat.completions.create({ model: 'claude', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: userText }] })
    let usage: OpenAI.CompletionUsage | undefined
    for await (const c of withUsage) if (c.usage) usage = c.usage
    assert.deepEqual([usage?.prompt_tokens, usage?.completion_tokens], [encode(userText).length, 6])
  })

  it('a streamed tool call with its arguments split over many events', async () => {
    const { id, out, reported } = await call(async (headers) => {
      const stream = await client.chat.completions.create({ model: 'claude', stream: true, stream_options: { include_usage: true }, tools, tool_choice: 'required', messages: [{ role: 'user', content: 'Weather in Paris for 2 days?' }] }, { headers })
      const chunks: OpenAI.ChatCompletionChunk[] = []
      for await (const c of stream) chunks.push(c)
      return chunks
    })
    const frags = out.flatMap((c) => c.choices[0]?.delta?.tool_calls ?? [])
    assert.equal(frags[0]!.function?.name, 'get_weather')
    assert.match(frags[0]!.id!, /^tooluse_/)
    const pieces = frags.slice(1).map((f) => f.function?.arguments ?? '')
    assert.ok(pieces.length >= 5, `arguments in ${pieces.length} events`)
    assert.ok(frags.slice(1).every((f) => f.index === 0 && f.id === undefined))
    assert.deepEqual(JSON.parse(pieces.join('')), { city: 'mock city value', days: 42 })
    assert.equal(out.find((c) => c.choices[0]?.finish_reason)?.choices[0]!.finish_reason, 'tool_calls')
    const usage = out.at(-1)!.usage!
    assert.deepEqual([usage.prompt_tokens, usage.completion_tokens], [reported[0]!.input, reported[0]!.output])
    const row = (await records([id])).get(id)!
    assert.deepEqual([row.promptTokens, row.completionTokens], [reported[0]!.input, reported[0]!.output])
  })

  it('a tool result turn: the assistant tool call and the tool result reach Bedrock as toolUse / toolResult, and the answer is text', async () => {
    const res = await client.chat.completions.create({
      model: 'claude',
      tools,
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'tooluse_abc', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
        { role: 'tool', tool_call_id: 'tooluse_abc', content: 'Sunny, 24C' },
      ],
    })
    assert.equal(res.choices[0]!.finish_reason, 'stop')
    assert.equal(encode(res.choices[0]!.message.content!).length, 6)
    assert.equal(res.choices[0]!.message.tool_calls, undefined)
  })

  it('an image input as a data: URL is sent as bytes (85 tokens at the mock); an http URL is a 400 naming the field, with a ledger row', async () => {
    const { id, out, reported } = await call((headers) => client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }] }] }, { headers }))
    assert.equal(out.choices[0]!.finish_reason, 'stop')
    assert.equal(reported[0]!.input, encode('What is this?').length + 85)
    assert.equal(out.usage!.prompt_tokens, reported[0]!.input)
    const bad = await call(async (headers) => {
      try {
        await client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }] }] }, { headers })
        return null
      } catch (e) {
        return e as InstanceType<typeof OpenAI.APIError>
      }
    })
    assert.equal(bad.out?.status, 400)
    assert.equal((bad.out?.error as { param?: string }).param, 'messages[0].content[0].image_url.url')
    assert.equal(bad.reported.length, 0, 'nothing was sent to Bedrock')
    const rows = await records([id, bad.id])
    assert.equal(rows.get(id)!.promptTokens, reported[0]!.input)
    assert.deepEqual([rows.get(bad.id)!.status, rows.get(bad.id)!.errorCode], [400, 'invalid_request_error'])
  })

  it('reasoning: thinking blocks with their signature come back, and replayed next turn they verify at Bedrock', async () => {
    const first = await client.chat.completions.create({ model: 'claude', reasoning_effort: 'low', messages: [{ role: 'user', content: userText }] })
    const msg = first.choices[0]!.message as OpenAI.ChatCompletionMessage & { reasoning_content?: string; thinking_blocks?: { type: string; thinking: string; signature: string }[] }
    assert.equal(msg.reasoning_content, 'Let me think about this first.')
    assert.equal(msg.thinking_blocks?.length, 1)
    const second = await client.chat.completions.create({ model: 'claude', reasoning_effort: 'low', messages: [{ role: 'user', content: userText }, { role: 'assistant', content: msg.content, thinking_blocks: msg.thinking_blocks } as OpenAI.ChatCompletionAssistantMessageParam, { role: 'user', content: 'More.' }] })
    assert.equal(second.choices[0]!.finish_reason, 'stop')
    // The contrast: a tampered signature is refused by the backend (relayed as its 400).
    const tampered = [{ ...msg.thinking_blocks![0]!, signature: 'forged' }]
    await assert.rejects(client.chat.completions.create({ model: 'claude', reasoning_effort: 'low', messages: [{ role: 'user', content: userText }, { role: 'assistant', content: msg.content, thinking_blocks: tampered } as OpenAI.ChatCompletionAssistantMessageParam, { role: 'user', content: 'More.' }] }), (e: InstanceType<typeof OpenAI.APIError>) => e.status === 400 && /signature/.test(e.message))
  })

  it('SigV4 with a session token, to an ARN model id that needs encoding', async () => {
    const temp = await call((headers) => client.chat.completions.create({ model: 'claude-temp', messages: [{ role: 'user', content: userText }] }, { headers }))
    assert.match(temp.reported[0]!.auth, /Credential=ASIAMOCKTEMPORARY\/.*SignedHeaders=[^,]*x-amz-security-token/)
    assert.equal(temp.reported[0]!.status, 200)
    const arn = await call((headers) => client.chat.completions.create({ model: 'claude-arn', messages: [{ role: 'user', content: userText }] }, { headers }))
    assert.equal(arn.reported[0]!.path, '/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-sonnet-4-20250514-v1%3A0/converse')
    assert.equal(arn.reported[0]!.status, 200)
  })

  it('429 throttling: retried on the next member (answered), or relayed with retry-after when it is the only one', async () => {
    const { out, reported } = await call((headers) => client.chat.completions.create({ model: 'claude-throttled', messages: [{ role: 'user', content: userText }] }, { headers }).withResponse())
    assert.equal(out.response.headers.get('x-sluice-backend'), 'bed')
    assert.deepEqual(reported.map((r) => r.status), [429, 200])
    const only = await call(async (headers) => {
      try { await client.chat.completions.create({ model: 'claude-429', messages: [{ role: 'user', content: userText }] }, { headers }); return null } catch (e) { return e as InstanceType<typeof OpenAI.APIError> }
    })
    assert.equal(only.out?.status, 429)
    assert.equal(only.out?.headers?.get('retry-after'), '2')
    const row = (await records([only.id])).get(only.id)!
    assert.deepEqual([row.status, row.errorCode], [429, 'rate_limit_exceeded'])
  })

  it('5xx: ServiceUnavailableException is a 502 bad_gateway when no other member is left', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'claude-503', messages: [{ role: 'user', content: userText }] }), (e: InstanceType<typeof OpenAI.APIError>) => e.status === 502 && e.code === 'bad_gateway')
  })

  it('refused credentials (InvalidSignatureException 403) map to the credential-refused bad_gateway, never showing a key', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'claude-denied', messages: [{ role: 'user', content: userText }] }), (e: InstanceType<typeof OpenAI.APIError>) => {
      assert.equal(e.status, 502)
      assert.match(e.message, /refused the gateway's credentials/)
      assert.doesNotMatch(e.message, /not-the-secret|AKIDEXAMPLE/)
      return true
    })
  })

  it('fallback across providers mid-pool: Bedrock 503 → the OpenAI-speaking member answers, plain and streamed', async () => {
    const { id, out } = await call((headers) => client.chat.completions.create({ model: 'claude-mixed', messages: [{ role: 'user', content: userText }] }, { headers }).withResponse())
    assert.equal(out.response.headers.get('x-sluice-backend'), 'oai')
    assert.equal(out.data.usage!.completion_tokens, 5)
    const stream = await client.chat.completions.create({ model: 'claude-mixed', stream: true, messages: [{ role: 'user', content: userText }] })
    let pieces = 0
    for await (const c of stream) if (c.choices[0]?.delta?.content) pieces++
    assert.equal(pieces, 5)
    const row = (await records([id])).get(id)!
    assert.deepEqual([row.backend, row.attempts, row.completionTokens], ['oai', 2, 5])
  })

  it('an in-stream throttlingException before any content fails over to the next member', async () => {
    const { out, reported } = await call(async (headers) => {
      const stream = await client.chat.completions.create({ model: 'claude-exc', stream: true, messages: [{ role: 'user', content: userText }] }, { headers })
      let text = ''
      for await (const c of stream) text += c.choices[0]?.delta?.content ?? ''
      return text
    })
    assert.equal(encode(out).length, 6)
    assert.equal(reported.length, 2)
  })

  it('a bad-CRC event before any content fails over; mid-stream it ends the stream with an error event and a ledger row; the gateway lives on', async () => {
    const early = await client.chat.completions.create({ model: 'claude-crc-early', stream: true, messages: [{ role: 'user', content: userText }] }).withResponse()
    let earlyText = ''
    for await (const c of early.data) earlyText += c.choices[0]?.delta?.content ?? ''
    assert.equal(early.response.headers.get('x-sluice-backend'), 'oai')
    assert.ok(earlyText.length > 0)

    const id = `bedrock-conf-${++n}`
    const res = await fetch(`${tg.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', 'x-request-id': id }, body: JSON.stringify({ model: 'claude-crc-late', stream: true, messages: [{ role: 'user', content: userText }] }) })
    assert.equal(res.status, 200)
    const text = await res.text()
    const frames = text.split('\n\n').filter(Boolean)
    const contents = frames.filter((f) => f.includes('"content":"') && !f.includes('"content":""'))
    assert.equal(contents.length, 3, 'the three tokens before the corrupted message')
    const errorFrame = frames.find((f) => f.includes('"error"'))
    assert.ok(errorFrame, text)
    assert.match(errorFrame!, /malformed event stream/)
    const row = (await records([id])).get(id)!
    assert.ok(row, 'a ledger row')
    assert.equal(row.backend, 'bed-crc-late')
    assert.equal(row.errorCode, 'bad_gateway')

    const after = await client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: userText }] })
    assert.equal(after.choices[0]!.finish_reason, 'stop')
  })
})
