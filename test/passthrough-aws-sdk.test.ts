import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { BedrockRuntimeClient, InvokeModelCommand, InvokeModelWithResponseStreamCommand } from '@aws-sdk/client-bedrock-runtime'
import { NodeHttpHandler } from '@smithy/node-http-handler'
import { startMockServer, type MockServer } from '../src/mock/llm.ts'
import type { UsageRecord } from '../src/stores/ledger.ts'
import { until } from './helpers/upstreams.ts'
import { startTestGateway, type TestGateway } from './helpers/gateway.ts'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const KEY = 'sk-passthrough-aws-sdk-a'
const MODEL_ID = 'anthropic.claude-3-haiku-20240307-v1:0'

// The AWS SDK as the client of a passthrough route: the app holds only its Sluice key (sent as a Bedrock API
// key, a bearer token), the gateway signs each request with SigV4 for the (mock) Bedrock it forwards to.
describe('passthrough: the AWS SDK (InvokeModel, InvokeModelWithResponseStream) through Sluice', () => {
  let mock: MockServer
  let gw: TestGateway
  let client: BedrockRuntimeClient
  const dir = mkdtempSync(join(tmpdir(), 'sluice-pt-aws-'))

  before(async () => {
    mock = await startMockServer()
    gw = await startTestGateway(`
ledger: { type: sqlite, path: ${join(dir, 'ledger.db')}, flushInterval: 20ms }
backends:
  - { id: bed, type: bedrock, url: ${mock.url}, region: us-east-1, auth: { awsSigV4: { accessKeyId: AKIDEXAMPLE, secretAccessKey: wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY } } }
passthrough:
  - { prefix: /native/bedrock, backend: bed, model: bedrock-native }
products: [ { id: standard } ]
consumers:
  - { id: team-a, product: standard, keys: [ { value: ${KEY} } ] }
`)
    client = new BedrockRuntimeClient({ region: 'us-east-1', endpoint: `${gw.url}/native/bedrock`, token: async () => ({ token: KEY }), authSchemePreference: ['httpBearerAuth'], maxAttempts: 1, requestHandler: new NodeHttpHandler() })
  })
  after(async () => {
    client.destroy()
    await gw.close()
    await mock.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('InvokeModel answers through the gateway and its usage is in the ledger', async () => {
    const out = await client.send(new InvokeModelCommand({
      modelId: MODEL_ID, contentType: 'application/json', accept: 'application/json',
      body: JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 4, messages: [{ role: 'user', content: 'Hi from the AWS SDK' }] }),
    }))
    const answer = JSON.parse(new TextDecoder().decode(out.body)) as { usage: { input_tokens: number; output_tokens: number } }
    assert.equal(answer.usage.output_tokens, 4)
    // The SDK reports Bedrock's own request id; the gateway's row is found by what it recorded.
    let rows: UsageRecord[] = []
    await until(async () => {
      await gw.gw.ledger!.flush(5_000)
      rows = (await gw.gw.ledger!.store.records({})).filter((r) => r.model === 'bedrock-native' && r.status === 200)
      return rows.length > 0
    }, 15_000)
    assert.equal(rows.length, 1)
    const row = rows[0]!
    assert.equal(row.model, 'bedrock-native')
    assert.equal(row.promptTokens, answer.usage.input_tokens)
    assert.equal(row.completionTokens, 4)
  })

  it('InvokeModelWithResponseStream streams chunks the SDK decodes', async () => {
    const out = await client.send(new InvokeModelWithResponseStreamCommand({
      modelId: MODEL_ID, contentType: 'application/json',
      body: JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 3, messages: [{ role: 'user', content: 'Stream from the AWS SDK' }] }),
    }))
    const types: string[] = []
    for await (const ev of out.body!) {
      if (ev.chunk?.bytes) types.push((JSON.parse(new TextDecoder().decode(ev.chunk.bytes)) as { type: string }).type)
    }
    assert.equal(types[0], 'message_start')
    assert.equal(types.filter((t) => t === 'content_block_delta').length, 3)
    assert.equal(types.at(-1), 'message_stop')
  })

  it('a wrong Sluice key is refused by the gateway (the SDK sees the 401)', async () => {
    const bad = new BedrockRuntimeClient({ region: 'us-east-1', endpoint: `${gw.url}/native/bedrock`, token: async () => ({ token: 'sk-not-a-sluice-key' }), authSchemePreference: ['httpBearerAuth'], maxAttempts: 1, requestHandler: new NodeHttpHandler() })
    await assert.rejects(bad.send(new InvokeModelCommand({ modelId: MODEL_ID, contentType: 'application/json', body: '{}' })), (e: { $metadata?: { httpStatusCode?: number } }) => e.$metadata?.httpStatusCode === 401)
    bad.destroy()
  })
})
