import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI, { AzureOpenAI } from 'openai'
import type { UsageRecord } from '../src/stores/ledger.ts'
import { startTestGateway, TEST_KEY, type TestGateway } from './helpers/gateway.ts'
import { startRecordingBackend, type Recorded, type RecordingBackend } from './helpers/recorder.ts'

// Traffic through real `openai` and `azure-openai` backends pointed at loopback servers that record what they
// receive: the URL path, the query (api-version), the auth header, and the model / deployment name, which here
// always differs from the public model name the client used.
const OPENAI_KEY = 'sk-upstream-openai-0001-secret'
const AZURE_KEY = 'azure-upstream-key-0002-secret'
const API_VERSION = '2025-01-01-preview'

// Token figures derived by hand (o200k_base, checked with gpt-tokenizer's encode), never by src/:
// 'Say hello.' = Say| hello|. = 3 tokens; 'user' = 1. A chat prompt of that one message: 3 framing + 1 + 3, +3 priming = 10.
// Embeddings and completions count the text alone: 3. The mock writes exactly max_tokens (5) completion tokens.
const TEXT = 'Say hello.'
const CHAT_PROMPT = 10
const TEXT_PROMPT = 3
const COMPLETION = 5

describe('openai and azure-openai backends, end to end against recording loopback servers', () => {
  let oa: RecordingBackend
  let az: RecordingBackend
  let tg: TestGateway
  let client: OpenAI
  const dir = mkdtempSync(join(tmpdir(), 'sluice-providers-'))
  let n = 0
  const rid = () => `prov-${++n}`

  before(async () => {
    oa = await startRecordingBackend()
    az = await startRecordingBackend()
    tg = await startTestGateway(`
ledger: { type: sqlite, path: ${join(dir, 'ledger.db')}, flushInterval: 50ms }
backends:
  - id: oa
    type: openai
    url: ${oa.url}
    auth: { apiKey: ${OPENAI_KEY} }
    models: { gpt-4o-mini: gpt-4o-mini-2024-07-18 }
  - id: az
    type: azure-openai
    url: ${az.url}
    apiVersion: ${API_VERSION}
    auth: { apiKey: ${AZURE_KEY} }
    models: { gpt-4o: prod-gpt4o-eastus, text-embedding-3-small: embed-small-prod }
models:
  - { name: gpt-4o-mini, target: oa }
  - { name: gpt-4o, target: az }
  - { name: text-embedding-3-small, target: az }
consumers:
  - id: team-a
    keys: [ { value: ${TEST_KEY} } ]
`)
    client = new OpenAI({ apiKey: TEST_KEY, baseURL: `${tg.url}/v1`, maxRetries: 0 })
  })
  after(async () => {
    await tg?.close()
    await oa?.close()
    await az?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  /** The one request the backend received for this call (the test sends one at a time). */
  const lastAt = (b: RecordingBackend, before: number): Recorded => {
    assert.equal(b.requests.length, before + 1, 'the backend received exactly one request')
    return b.requests.at(-1)!
  }
  const noConsumerKey = (r: Recorded) => {
    for (const [name, v] of Object.entries(r.headers)) assert.ok(!String(v).includes(TEST_KEY), `the consumer key reached the backend in ${name}`)
  }
  const ledgerRow = async (id: string): Promise<UsageRecord> => {
    assert.equal(await tg.gw.ledger!.flush(10_000), true)
    const rows = await tg.gw.ledger!.store.records({ requestIds: [id] })
    assert.equal(rows.length, 1, `one ledger row for ${id}`)
    return rows[0]!
  }
  const checkOpenAi = (r: Recorded, path: string, model: string) => {
    assert.equal(r.method, 'POST')
    assert.equal(r.url, path)
    assert.equal(r.headers.authorization, `Bearer ${OPENAI_KEY}`)
    assert.equal(r.headers['api-key'], undefined)
    assert.equal(r.body.model, model)
    noConsumerKey(r)
  }
  const checkAzure = (r: Recorded, path: string) => {
    assert.equal(r.method, 'POST')
    assert.equal(r.url, path)
    assert.equal(r.headers['api-key'], AZURE_KEY)
    assert.equal(r.headers.authorization, undefined, 'Azure gets api-key, not a bearer token')
    noConsumerKey(r)
  }

  it('openai: chat completions go to /v1/chat/completions with the bearer key and the mapped model', async () => {
    const before = oa.requests.length
    const id = rid()
    const { data, response } = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: TEXT }], max_tokens: COMPLETION }, { headers: { 'x-request-id': id } }).withResponse()
    assert.equal(response.headers.get('x-sluice-backend'), 'oa')
    assert.equal(data.usage!.prompt_tokens, CHAT_PROMPT)
    assert.equal(data.usage!.completion_tokens, COMPLETION)
    assert.ok(data.choices[0]!.message.content)
    for (const [, v] of response.headers) assert.ok(!v.includes(OPENAI_KEY), 'no upstream key in an answer header')
    const r = lastAt(oa, before)
    checkOpenAi(r, '/v1/chat/completions', 'gpt-4o-mini-2024-07-18')
    assert.deepEqual(r.body.messages, [{ role: 'user', content: TEXT }])
    const row = await ledgerRow(id)
    assert.deepEqual([row.model, row.backend, row.status, row.promptTokens, row.completionTokens, row.stream], ['gpt-4o-mini', 'oa', 200, CHAT_PROMPT, COMPLETION, false])
  })

  it('openai: a stream asks the backend for usage and is accounted without the client asking', async () => {
    const before = oa.requests.length
    const id = rid()
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: TEXT }], max_tokens: COMPLETION, stream: true }, { headers: { 'x-request-id': id } })
    let text = ''
    let sawUsage = false
    for await (const c of stream) { text += c.choices[0]?.delta?.content ?? ''; if (c.usage) sawUsage = true }
    assert.ok(text.length > 0)
    assert.equal(sawUsage, false, 'the usage chunk the client did not ask for is not relayed')
    const r = lastAt(oa, before)
    checkOpenAi(r, '/v1/chat/completions', 'gpt-4o-mini-2024-07-18')
    assert.equal(r.body.stream, true)
    assert.deepEqual(r.body.stream_options, { include_usage: true })
    const row = await ledgerRow(id)
    assert.deepEqual([row.model, row.backend, row.promptTokens, row.completionTokens, row.stream], ['gpt-4o-mini', 'oa', CHAT_PROMPT, COMPLETION, true])
  })

  it('openai: /v1/responses goes to /v1/responses with the mapped model', async () => {
    const before = oa.requests.length
    const id = rid()
    const res = await client.responses.create({ model: 'gpt-4o-mini', input: TEXT, max_output_tokens: COMPLETION }, { headers: { 'x-request-id': id } })
    assert.equal(res.usage!.output_tokens, COMPLETION)
    const r = lastAt(oa, before)
    checkOpenAi(r, '/v1/responses', 'gpt-4o-mini-2024-07-18')
    assert.equal(r.body.input, TEXT)
    // A string input is one user message to the backend: the chat figure, 10.
    assert.equal(res.usage!.input_tokens, CHAT_PROMPT)
    const row = await ledgerRow(id)
    assert.deepEqual([row.backend, row.promptTokens, row.completionTokens], ['oa', CHAT_PROMPT, COMPLETION])
  })

  it('azure-openai: chat goes to the deployment path with api-version and the api-key header', async () => {
    const before = az.requests.length
    const id = rid()
    const { data, response } = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: TEXT }], max_tokens: COMPLETION }, { headers: { 'x-request-id': id } }).withResponse()
    assert.equal(response.headers.get('x-sluice-backend'), 'az')
    assert.equal(data.usage!.prompt_tokens, CHAT_PROMPT)
    for (const [, v] of response.headers) assert.ok(!v.includes(AZURE_KEY), 'no upstream key in an answer header')
    const r = lastAt(az, before)
    checkAzure(r, `/openai/deployments/prod-gpt4o-eastus/chat/completions?api-version=${API_VERSION}`)
    const row = await ledgerRow(id)
    assert.deepEqual([row.model, row.backend, row.promptTokens, row.completionTokens], ['gpt-4o', 'az', CHAT_PROMPT, COMPLETION])
  })

  it('azure-openai: streams, completions, embeddings and responses reach their Azure paths', async () => {
    let before = az.requests.length
    const sid = rid()
    const stream = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: TEXT }], max_tokens: COMPLETION, stream: true }, { headers: { 'x-request-id': sid } })
    let text = ''
    for await (const c of stream) text += c.choices[0]?.delta?.content ?? ''
    assert.ok(text.length > 0)
    checkAzure(lastAt(az, before), `/openai/deployments/prod-gpt4o-eastus/chat/completions?api-version=${API_VERSION}`)
    assert.deepEqual([(await ledgerRow(sid)).completionTokens, (await ledgerRow(sid)).promptTokens], [COMPLETION, CHAT_PROMPT])

    before = az.requests.length
    const cid = rid()
    const comp = await client.completions.create({ model: 'gpt-4o', prompt: TEXT, max_tokens: COMPLETION }, { headers: { 'x-request-id': cid } })
    assert.equal(comp.usage!.prompt_tokens, TEXT_PROMPT)
    checkAzure(lastAt(az, before), `/openai/deployments/prod-gpt4o-eastus/completions?api-version=${API_VERSION}`)
    assert.equal((await ledgerRow(cid)).promptTokens, TEXT_PROMPT)

    before = az.requests.length
    const eid = rid()
    const emb = await client.embeddings.create({ model: 'text-embedding-3-small', input: TEXT }, { headers: { 'x-request-id': eid } })
    assert.equal(emb.usage.prompt_tokens, TEXT_PROMPT)
    checkAzure(lastAt(az, before), `/openai/deployments/embed-small-prod/embeddings?api-version=${API_VERSION}`)
    const erow = await ledgerRow(eid)
    assert.deepEqual([erow.model, erow.backend, erow.promptTokens, erow.completionTokens], ['text-embedding-3-small', 'az', TEXT_PROMPT, 0])

    // The Responses API lives under /openai/v1/ on Azure, with the deployment as `model`.
    before = az.requests.length
    const rid2 = rid()
    const resp = await client.responses.create({ model: 'gpt-4o', input: TEXT, max_output_tokens: COMPLETION }, { headers: { 'x-request-id': rid2 } })
    assert.equal(resp.usage!.output_tokens, COMPLETION)
    const r = lastAt(az, before)
    assert.match(r.url, /^\/openai\/v1\/responses(\?|$)/)
    checkAzure(r, r.url)
    assert.equal(r.body.model, 'prod-gpt4o-eastus')
    assert.equal((await ledgerRow(rid2)).completionTokens, COMPLETION)
  })

  it("the AzureOpenAI SDK on the gateway's Azure-style front door reaches the azure backend's deployment", async () => {
    const azClient = new AzureOpenAI({ endpoint: tg.url, apiKey: TEST_KEY, apiVersion: '2024-10-21', deployment: 'gpt-4o', maxRetries: 0 })
    const before = az.requests.length
    const { data, response } = await azClient.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: TEXT }], max_tokens: COMPLETION }).withResponse()
    assert.equal(response.headers.get('x-sluice-backend'), 'az')
    assert.equal(data.usage!.completion_tokens, COMPLETION)
    // The backend's own api-version, not the client's, and the backend's deployment name.
    const r = lastAt(az, before)
    checkAzure(r, `/openai/deployments/prod-gpt4o-eastus/chat/completions?api-version=${API_VERSION}`)
  })

  it('refuses a wrong consumer key before any backend is called (the contrast: the same call with the right key was sent)', async () => {
    const [bo, ba] = [oa.requests.length, az.requests.length]
    const bad = new OpenAI({ apiKey: 'sk-not-a-key-0000', baseURL: `${tg.url}/v1`, maxRetries: 0 })
    const err = await bad.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: TEXT }] }).then(() => null, (e: unknown) => e)
    assert.ok(err instanceof OpenAI.AuthenticationError)
    assert.equal(oa.requests.length, bo)
    assert.equal(az.requests.length, ba)
  })
})
