import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { ManualClock } from '../../src/core/clock.ts'
import { GoogleCredentials } from '../../src/providers/credentials/google.ts'
import { vertex } from '../../src/providers/vertex.ts'
import { loadConfigText } from '../../src/config/load.ts'
import { builtinPolicies } from '../../src/policies/registry.ts'
import { startTestGateway, TEST_KEY, type TestGateway } from '../helpers/gateway.ts'
import { startGoogleTokenServer, type GoogleTokenServer } from '../helpers/google-token-server.ts'
import { geminiUsageOf, startRecordingMock, type RecordingMock } from '../helpers/recording-mock.ts'
import { ledgerRow as ledgerRowOf } from '../helpers/ledger-row.ts'

// type: vertex — Gemini models on Vertex AI with OAuth tokens from a service account (google-auth-library),
// fetched from a loopback token endpoint that verifies the JWT grant's signature, once per token lifetime.

let mock: RecordingMock
let tokens: GoogleTokenServer
let tg: TestGateway
let client: OpenAI
let saFile: string
const dir = mkdtempSync(join(tmpdir(), 'sluice-vertex-'))

before(async () => {
  mock = await startRecordingMock()
  tokens = await startGoogleTokenServer(mock.url)
  saFile = tokens.serviceAccountFile(dir)
  tg = await startTestGateway(`
ledger: { type: sqlite, path: ${join(dir, 'ledger.db')}, flushInterval: 20ms }
backends:
  - { id: vtx, type: vertex, url: ${mock.url}, project: my-proj, region: us-central1, auth: { google: { credentialsFile: ${saFile} } } }
  - { id: vtx-503, type: vertex, url: ${mock.url}, project: my-proj, region: us-central1, auth: { google: { credentialsFile: ${saFile} } }, headers: { x-mock-status: "503" } }
  - { id: oai, type: mock }
pools:
  - id: mixed
    strategy: priority
    members: [ { backend: vtx-503, priority: 1 }, { backend: oai, priority: 2 } ]
models:
  - { name: gemini-2.5-pro, target: vtx }
  - { name: mixed-model, target: mixed }
consumers:
  - { id: team-a, keys: [ { value: ${TEST_KEY} } ] }
`)
  client = new OpenAI({ baseURL: `${tg.url}/v1`, apiKey: TEST_KEY, maxRetries: 0 })
})
after(async () => {
  await tg.close()
  await tokens.close()
  await mock.close()
  rmSync(dir, { recursive: true, force: true })
})

const ledgerRow = (requestId: string) => ledgerRowOf(tg.gw, requestId)

test('Vertex paths: region host, global, publisher by model id or option', () => {
  const res = loadConfigText(`
backends:
  - { id: a, type: vertex, project: p1, region: europe-west4, auth: { google: {} } }
  - { id: g, type: vertex, project: p1, region: global, auth: { google: {} } }
  - { id: c, type: vertex, project: p1, region: us-east5, publisher: anthropic, auth: { google: {} } }
models:
  - { name: m, target: a }
`, { registry: builtinPolicies(), env: {} })
  assert.ok(res.ok)
  const [a, g, c] = res.config.backends
  assert.equal(vertex.defaultUrl!(a!), 'https://europe-west4-aiplatform.googleapis.com')
  assert.equal(vertex.defaultUrl!(g!), 'https://aiplatform.googleapis.com')
  const t = vertex.target(a!, 'chat.completions', 'gemini-2.5-pro', vertex.defaultUrl!(a!)!, true)
  assert.equal(t.origin + t.path, 'https://europe-west4-aiplatform.googleapis.com/v1/projects/p1/locations/europe-west4/publishers/google/models/gemini-2.5-pro:streamGenerateContent?alt=sse')
  const tg2 = vertex.target(g!, 'chat.completions', 'claude-sonnet-4-5@20250929', vertex.defaultUrl!(g!)!, false)
  assert.equal(tg2.origin + tg2.path, 'https://aiplatform.googleapis.com/v1/projects/p1/locations/global/publishers/anthropic/models/claude-sonnet-4-5%4020250929:rawPredict')
  const tc = vertex.target(c!, 'chat.completions', 'my-tuned-model', 'https://us-east5-aiplatform.googleapis.com', true)
  assert.match(tc.path, /publishers\/anthropic\/models\/my-tuned-model:streamRawPredict$/)

  const missing = loadConfigText(`
backends:
  - { id: a, type: vertex, auth: { google: {} } }
models:
  - { name: m, target: a }
`, { registry: builtinPolicies(), env: {} })
  assert.equal(missing.ok, false)
  assert.match(JSON.stringify(!missing.ok && missing.problems), /needs project and region/)
})

test('OpenAI SDK → Vertex Gemini: bearer token from the service account, fetched once across many requests; usage = usageMetadata', async () => {
  const before = tokens.grants
  const ids: string[] = []
  const results = await Promise.all(Array.from({ length: 8 }, () => client.chat.completions.create({ model: 'gemini-2.5-pro', max_tokens: 3, messages: [{ role: 'user', content: 'Say hello' }] }).withResponse()))
  for (const { data, response } of results) {
    assert.equal(data.usage!.completion_tokens, 3)
    ids.push(response.headers.get('x-request-id')!)
  }
  for (let i = 0; i < 5; i++) await client.chat.completions.create({ model: 'gemini-2.5-pro', max_tokens: 2, messages: [{ role: 'user', content: `again ${i}` }] })
  assert.equal(tokens.grants - before, 1, 'one token grant for 13 requests')
  assert.equal(tokens.refused, 0)
  assert.deepEqual(tokens.scopes, ['https://www.googleapis.com/auth/cloud-platform'])
  const ex = mock.exchanges.find((e) => e.url.includes('/publishers/google/'))!
  assert.equal(ex.url, '/v1/projects/my-proj/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent')
  assert.match(String(ex.headers.authorization), /^Bearer ya29\.mock\./)
  const u = geminiUsageOf(ex)
  const row = await ledgerRow(ids[0]!)
  assert.deepEqual({ backend: row.backend, p: row.promptTokens, c: row.completionTokens }, { backend: 'vtx', p: u.promptTokenCount, c: u.candidatesTokenCount })
})

test('streamed text and a streamed tool call through Vertex', async () => {
  const stream = await client.chat.completions.create({ model: 'gemini-2.5-pro', stream: true, stream_options: { include_usage: true }, max_tokens: 4, messages: [{ role: 'user', content: 'Tell me' }] })
  let text = ''
  let usage: OpenAI.CompletionUsage | undefined
  for await (const c of stream) {
    text += c.choices[0]?.delta?.content ?? ''
    if (c.usage) usage = c.usage
  }
  const u = geminiUsageOf(mock.last())
  assert.ok(mock.last().url.endsWith(':streamGenerateContent?alt=sse'))
  assert.ok(text.length > 0)
  assert.deepEqual({ p: usage!.prompt_tokens, c: usage!.completion_tokens }, { p: u.promptTokenCount, c: 4 })

  const tools = client.chat.completions.stream({
    model: 'gemini-2.5-pro', tool_choice: 'required',
    tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: { q: { type: 'string' } }, required: ['q'] } } }],
    messages: [{ role: 'user', content: 'Look it up' }],
  })
  const final = await tools.finalChatCompletion()
  assert.equal(final.choices[0]!.finish_reason, 'tool_calls')
  const call = final.choices[0]!.message.tool_calls![0]! as OpenAI.Chat.ChatCompletionMessageFunctionToolCall
  assert.deepEqual({ name: call.function.name, args: JSON.parse(call.function.arguments) }, { name: 'lookup', args: { q: 'mock' } })
})

test('fallback across providers: Vertex 503 UNAVAILABLE → the OpenAI-speaking member', async () => {
  const { response } = await client.chat.completions.create({ model: 'mixed-model', max_tokens: 2, messages: [{ role: 'user', content: 'hi' }] }).withResponse()
  assert.equal(response.headers.get('x-sluice-backend'), 'oai')
  assert.equal(mock.last().status, 503)
})

test('the token is refreshed after its lifetime, concurrent requests share one fetch, and ADC reads GOOGLE_APPLICATION_CREDENTIALS', async () => {
  const clock = new ManualClock(Date.now())
  const creds = new GoogleCredentials({ backendId: 'unit', credentialsFile: saFile, clock })
  const before = tokens.grants
  const first = await Promise.all(Array.from({ length: 10 }, () => creds.headers()))
  assert.equal(tokens.grants - before, 1, 'ten concurrent callers, one grant')
  assert.ok(first.every((h) => h.authorization === first[0]!.authorization))
  // The mock issues tokens for 3599 s; the cache refreshes 5 minutes before the end.
  clock.advance(3599_000 - 300_000 - 1_000)
  await creds.headers()
  assert.equal(tokens.grants - before, 1, 'still valid: no fetch')
  clock.advance(2_000)
  await creds.headers()
  assert.equal(tokens.grants - before, 2, 'due: fetched again')
  clock.advance(3600_000)
  await creds.headers()
  assert.equal(tokens.grants - before, 3, 'expired: fetched again')

  const adc = new GoogleCredentials({ backendId: 'adc', env: { GOOGLE_APPLICATION_CREDENTIALS: saFile } })
  const h = await adc.headers()
  assert.match(h.authorization!, /^Bearer ya29\.mock\./)
  assert.equal(tokens.grants - before, 4)
})

test('a key the token endpoint refuses is a clean 502, with no key material in the answer', async () => {
  const other = await startGoogleTokenServer(mock.url)
  const forged = other.serviceAccountFile(dir, 'other.json')
  // Same e-mail and token_uri as the real account, another private key: the endpoint refuses its signature.
  const real = JSON.parse((await import('node:fs')).readFileSync(saFile, 'utf8')) as Record<string, string>
  const impostor = { ...JSON.parse((await import('node:fs')).readFileSync(forged, 'utf8')) as Record<string, string>, client_email: real.client_email!, token_uri: real.token_uri! }
  writeFileSync(forged, JSON.stringify(impostor))
  await other.close()
  const creds = new GoogleCredentials({ backendId: 'impostor', credentialsFile: forged })
  const refusedBefore = tokens.refused
  await assert.rejects(creds.headers(), (err: Error & { status?: number }) => {
    assert.equal(err.status, 502)
    assert.doesNotMatch(err.message, /PRIVATE KEY|token_uri|127\.0\.0\.1/)
    return true
  })
  assert.equal(tokens.refused - refusedBefore, 1)
})
