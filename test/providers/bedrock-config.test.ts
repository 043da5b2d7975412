// Bedrock backend configuration: the region rule, the default URL, and a Bedrock API key (bearer) end to end.
process.env.AWS_EC2_METADATA_DISABLED = 'true'

import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { loadConfigText } from '../../src/config/load.ts'
import { builtinPolicies } from '../../src/policies/registry.ts'
import { defaultBaseUrl, providerFor } from '../../src/providers/index.ts'
import { MOCK_BEDROCK_API_KEY } from '../../src/mock/dialects/bedrock.ts'
import { startMockServer, type MockServer } from '../../src/mock/llm.ts'
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts'

const load = (backend: string) => loadConfigText(`backends:\n  - ${backend}\nmodels:\n  - { name: m, target: b }\n`, { registry: builtinPolicies(), env: {} })

describe('bedrock backend configuration', () => {
  it('needs a region (its own or the awsSigV4 one); with one, the default URL is the regional runtime endpoint', () => {
    const none = load('{ id: b, type: bedrock, auth: { awsSigV4: {} } }')
    assert.equal(none.ok, false)
    assert.deepEqual(!none.ok && none.problems.map((p) => p.path), ['backends[0].region'])
    const own = load('{ id: b, type: bedrock, region: eu-central-1, auth: { awsSigV4: {} } }')
    assert.ok(own.ok)
    assert.equal(defaultBaseUrl(own.config.backends[0]!), 'https://bedrock-runtime.eu-central-1.amazonaws.com')
    const fromAuth = load('{ id: b, type: bedrock, auth: { awsSigV4: { region: ap-south-1, accessKeyId: AKID, secretAccessKey: s } } }')
    assert.ok(fromAuth.ok)
    assert.equal(defaultBaseUrl(fromAuth.config.backends[0]!), 'https://bedrock-runtime.ap-south-1.amazonaws.com')
    assert.ok(load('{ id: b, type: bedrock, url: "http://127.0.0.1:1", auth: { apiKey: k } }').ok, 'an API key with a url needs no region')
    const half = load('{ id: b, type: bedrock, region: us-east-1, auth: { awsSigV4: { accessKeyId: AKID } } }')
    assert.deepEqual(!half.ok && half.problems.map((p) => p.path), ['backends[0].auth.awsSigV4'])
  })

  it('paths: converse and converse-stream under the model id, encoded as one segment', () => {
    const p = providerFor('bedrock')
    const b = load('{ id: b, type: bedrock, region: us-east-1 }')
    assert.ok(b.ok)
    const be = b.config.backends[0]!
    assert.equal(p.target(be, 'chat.completions', 'amazon.nova-pro-v1:0', 'https://bedrock-runtime.us-east-1.amazonaws.com', false).path, '/model/amazon.nova-pro-v1%3A0/converse')
    assert.equal(p.target(be, 'chat.completions', "weird(id)!*'", 'https://x.example/prefix/', true).path, '/prefix/model/weird%28id%29%21%2A%27/converse-stream')
    assert.ok(!p.operations.has('embeddings'))
  })
})

describe('a Bedrock API key (bearer) instead of SigV4', () => {
  let mock: MockServer
  let tg: TestGateway
  let client: OpenAI
  before(async () => {
    mock = await startMockServer()
    tg = await startTestGateway(`
backends:
  - { id: bed-key, type: bedrock, url: ${mock.url}, auth: { apiKey: ${MOCK_BEDROCK_API_KEY} } }
  - { id: bed-wrong, type: bedrock, url: ${mock.url}, auth: { apiKey: ABSKnottheone } }
models:
  - { name: nova, target: bed-key }
  - { name: nova-wrong, target: bed-wrong, maxAttempts: 1 }
consumers:
  - { id: t, keys: [ { value: sk-bedrock-config-key } ] }
`)
    client = new OpenAI({ baseURL: `${tg.url}/v1`, apiKey: 'sk-bedrock-config-key', maxRetries: 0 })
  })
  after(async () => {
    await tg?.close()
    await mock?.close()
  })

  it('the right key is answered, a wrong one is the credential-refused error', async () => {
    const ok = await client.chat.completions.create({ model: 'nova', messages: [{ role: 'user', content: 'hi' }] })
    assert.equal(ok.choices[0]!.finish_reason, 'stop')
    await assert.rejects(client.chat.completions.create({ model: 'nova-wrong', messages: [{ role: 'user', content: 'hi' }] }), (e: InstanceType<typeof OpenAI.APIError>) => e.status === 502 && /refused the gateway's credentials/.test(e.message))
  })
})
