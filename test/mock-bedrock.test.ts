// The mock's Bedrock dialect, driven by the official @aws-sdk/client-bedrock-runtime (its own SigV4 signer,
// event-stream decoder with CRC checks, and error deserialiser): if the SDK accepts the mock, the mock speaks
// Bedrock. No credentials chain is consulted (static keys), and nothing leaves loopback.
process.env.AWS_EC2_METADATA_DISABLED = 'true'

import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { BedrockRuntimeClient, ConverseCommand, ConverseStreamCommand, type ConverseStreamOutput } from '@aws-sdk/client-bedrock-runtime'
import { NodeHttpHandler } from '@smithy/node-http-handler'
import { encode } from 'gpt-tokenizer/encoding/o200k_base'
import { startMockServer, type MockServer } from '../src/mock/llm.ts'

const KEY = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' }
const TEMP = { accessKeyId: 'ASIAMOCKTEMPORARY', secretAccessKey: 'tEmPoRaRySeCrEtKeYfOrThEsLuIcEmOcK00000', sessionToken: 'IQoJb3JpZ2luX2VjEMOCK//session+token/for=sluice' }
const MODEL = 'anthropic.claude-3-5-sonnet-20240620-v1:0'
const ARN = 'arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0'

let mock: MockServer

function client(credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } = KEY, headers: Record<string, string> = {}): BedrockRuntimeClient {
  // The SDK defaults to HTTP/2 for Bedrock Runtime (bidirectional streams); Converse and ConverseStream are
  // plain HTTP/1.1 requests, which is what the mock (and the gateway's upstream client) speak.
  const c = new BedrockRuntimeClient({ region: 'us-east-1', endpoint: mock.url, credentials, maxAttempts: 1, requestHandler: new NodeHttpHandler() })
  // Added before signing (build step), so the mock's fault-injection headers are signed like any other.
  c.middlewareStack.add((next) => async (args) => {
    const req = args.request as { headers: Record<string, string> }
    Object.assign(req.headers, headers)
    return next(args)
  }, { step: 'build', name: 'mockHeaders' })
  return c
}

async function collect(stream: AsyncIterable<ConverseStreamOutput> | undefined): Promise<ConverseStreamOutput[]> {
  const out: ConverseStreamOutput[] = []
  for await (const ev of stream!) out.push(ev)
  return out
}

const userText = 'Tell me about the river.'

describe('mock Bedrock dialect through @aws-sdk/client-bedrock-runtime', () => {
  before(async () => {
    mock = await startMockServer()
  })
  after(async () => {
    await mock.close()
  })

  it('Converse: text, stop reason and usage counted from the prompt', async () => {
    const res = await client(KEY, { 'x-mock-completion-tokens': '7' }).send(new ConverseCommand({
      modelId: MODEL,
      system: [{ text: 'Be brief.' }],
      messages: [{ role: 'user', content: [{ text: userText }] }],
    }))
    assert.equal(res.stopReason, 'end_turn')
    const text = res.output?.message?.content?.[0]?.text
    assert.equal(typeof text, 'string')
    assert.equal(encode(text!).length, 7)
    assert.equal(res.usage?.inputTokens, encode('Be brief.').length + encode(userText).length)
    assert.equal(res.usage?.outputTokens, 7)
    assert.equal(res.usage?.totalTokens, res.usage!.inputTokens! + 7)
  })

  it('Converse: maxTokens caps the answer with stopReason max_tokens', async () => {
    const res = await client().send(new ConverseCommand({ modelId: MODEL, messages: [{ role: 'user', content: [{ text: userText }] }], inferenceConfig: { maxTokens: 3 } }))
    assert.equal(res.stopReason, 'max_tokens')
    assert.equal(res.usage?.outputTokens, 3)
  })

  it('ConverseStream: the SDK decodes every event (CRCs valid) in Bedrock\'s order', async () => {
    const res = await client(KEY, { 'x-mock-completion-tokens': '5' }).send(new ConverseStreamCommand({ modelId: MODEL, messages: [{ role: 'user', content: [{ text: userText }] }] }))
    const events = await collect(res.stream)
    const kinds = events.map((e) => Object.keys(e).find((k) => k !== '$unknown'))
    assert.deepEqual(kinds, ['messageStart', 'contentBlockDelta', 'contentBlockDelta', 'contentBlockDelta', 'contentBlockDelta', 'contentBlockDelta', 'contentBlockStop', 'messageStop', 'metadata'])
    assert.equal(events[0]!.messageStart?.role, 'assistant')
    const text = events.map((e) => e.contentBlockDelta?.delta?.text ?? '').join('')
    assert.equal(encode(text).length, 5)
    assert.equal(events[7]!.messageStop?.stopReason, 'end_turn')
    assert.equal(events[8]!.metadata?.usage?.outputTokens, 5)
    assert.equal(events[8]!.metadata?.usage?.inputTokens, encode(userText).length)
  })

  it('tool use when toolChoice demands one: Converse answers toolUse, ConverseStream streams the input in pieces', async () => {
    const toolConfig = {
      tools: [{ toolSpec: { name: 'get_weather', description: 'Weather for a city', inputSchema: { json: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city'] } } } }],
      toolChoice: { any: {} },
    }
    const messages = [{ role: 'user' as const, content: [{ text: 'Weather in Paris?' }] }]
    const res = await client().send(new ConverseCommand({ modelId: MODEL, messages, toolConfig }))
    assert.equal(res.stopReason, 'tool_use')
    const use = res.output?.message?.content?.find((b) => b.toolUse)?.toolUse
    assert.equal(use?.name, 'get_weather')
    assert.deepEqual(use?.input, { city: 'mock city value', days: 42 })
    assert.match(use!.toolUseId!, /^tooluse_/)

    const s = await client().send(new ConverseStreamCommand({ modelId: MODEL, messages, toolConfig }))
    const events = await collect(s.stream)
    const start = events.find((e) => e.contentBlockStart)?.contentBlockStart
    assert.equal(start?.start?.toolUse?.name, 'get_weather')
    const pieces = events.flatMap((e) => (e.contentBlockDelta?.delta?.toolUse?.input !== undefined ? [e.contentBlockDelta.delta.toolUse.input] : []))
    assert.ok(pieces.length >= 5, `input in many pieces (${pieces.length})`)
    assert.deepEqual(JSON.parse(pieces.join('')), { city: 'mock city value', days: 42 })
    assert.equal(events.find((e) => e.messageStop)?.messageStop?.stopReason, 'tool_use')
  })

  it('a tool result turn (toolUse / toolResult with toolConfig) gets a text answer; without toolConfig it is a ValidationException', async () => {
    const toolConfig = { tools: [{ toolSpec: { name: 'get_weather', inputSchema: { json: { type: 'object', properties: { city: { type: 'string' } } } } } }] }
    const messages = [
      { role: 'user' as const, content: [{ text: 'Weather in Paris?' }] },
      { role: 'assistant' as const, content: [{ toolUse: { toolUseId: 'tooluse_1', name: 'get_weather', input: { city: 'Paris' } } }] },
      { role: 'user' as const, content: [{ toolResult: { toolUseId: 'tooluse_1', content: [{ text: 'Sunny, 24C' }] } }] },
    ]
    const res = await client().send(new ConverseCommand({ modelId: MODEL, messages, toolConfig }))
    assert.equal(res.stopReason, 'end_turn')
    assert.equal(typeof res.output?.message?.content?.[0]?.text, 'string')
    await assert.rejects(client().send(new ConverseCommand({ modelId: MODEL, messages })), (e: Error & { $metadata?: { httpStatusCode?: number } }) => {
      assert.equal(e.name, 'ValidationException')
      assert.equal(e.$metadata?.httpStatusCode, 400)
      return true
    })
  })

  it('reasoning when additionalModelRequestFields asks for thinking: a reasoningText with a signature', async () => {
    const res = await client().send(new ConverseCommand({ modelId: MODEL, messages: [{ role: 'user', content: [{ text: userText }] }], additionalModelRequestFields: { thinking: { type: 'enabled', budget_tokens: 1024 } } }))
    const r = res.output?.message?.content?.[0]?.reasoningContent?.reasoningText
    assert.equal(r?.text, 'Let me think about this first.')
    assert.equal(typeof r?.signature, 'string')
    const s = await client().send(new ConverseStreamCommand({ modelId: MODEL, messages: [{ role: 'user', content: [{ text: userText }] }], additionalModelRequestFields: { thinking: { type: 'enabled', budget_tokens: 1024 } } }))
    const events = await collect(s.stream)
    const text = events.map((e) => e.contentBlockDelta?.delta?.reasoningContent?.text ?? '').join('')
    assert.equal(text, 'Let me think about this first.')
    assert.ok(events.some((e) => e.contentBlockDelta?.delta?.reasoningContent?.signature === r?.signature))
  })

  it('SigV4: temporary credentials with their session token and an ARN model id verify; a wrong secret, an unknown key or a missing token do not', async () => {
    const ok = await client(TEMP).send(new ConverseCommand({ modelId: ARN, messages: [{ role: 'user', content: [{ text: userText }] }] }))
    assert.equal(ok.stopReason, 'end_turn')
    const refused = async (creds: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }, name: string) => {
      await assert.rejects(client(creds).send(new ConverseCommand({ modelId: MODEL, messages: [{ role: 'user', content: [{ text: userText }] }] })), (e: Error & { $metadata?: { httpStatusCode?: number } }) => {
        assert.equal(e.name, name)
        assert.equal(e.$metadata?.httpStatusCode, 403)
        return true
      })
    }
    await refused({ ...KEY, secretAccessKey: KEY.secretAccessKey.replace('K7', 'K8') }, 'InvalidSignatureException')
    await refused({ accessKeyId: 'AKIDUNKNOWN', secretAccessKey: KEY.secretAccessKey }, 'UnrecognizedClientException')
    await refused({ accessKeyId: TEMP.accessKeyId, secretAccessKey: TEMP.secretAccessKey }, 'UnrecognizedClientException')
  })

  it('faults in Bedrock\'s error shape: 429 ThrottlingException, 503 ServiceUnavailableException, an in-stream modelStreamErrorException', async () => {
    for (const [status, name] of [[429, 'ThrottlingException'], [503, 'ServiceUnavailableException']] as const) {
      await assert.rejects(client(KEY, { 'x-mock-status': String(status) }).send(new ConverseCommand({ modelId: MODEL, messages: [{ role: 'user', content: [{ text: userText }] }] })), (e: Error & { $metadata?: { httpStatusCode?: number } }) => {
        assert.equal(e.name, name)
        assert.equal(e.$metadata?.httpStatusCode, status)
        return true
      })
    }
    const s = await client(KEY, { 'x-mock-error-after-tokens': '2' }).send(new ConverseStreamCommand({ modelId: MODEL, messages: [{ role: 'user', content: [{ text: userText }] }] }))
    const seen: ConverseStreamOutput[] = []
    await assert.rejects((async () => { for await (const ev of s.stream!) seen.push(ev) })(), (e: Error) => e.name === 'ModelStreamErrorException')
    assert.equal(seen.filter((e) => e.contentBlockDelta).length, 2)
  })

  it('a corrupted CRC mid-stream is refused by the SDK\'s decoder too', async () => {
    const s = await client(KEY, { 'x-mock-bad-crc-after-tokens': '1' }).send(new ConverseStreamCommand({ modelId: MODEL, messages: [{ role: 'user', content: [{ text: userText }] }] }))
    const seen: ConverseStreamOutput[] = []
    await assert.rejects((async () => { for await (const ev of s.stream!) seen.push(ev) })(), /checksum/i)
    assert.equal(seen.filter((e) => e.contentBlockDelta).length, 1)
  })
})
