import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { authHeaders, startTestGateway, type TestGateway } from './helpers/gateway.ts'
import { startRecordingMock, type RecordingMock } from './helpers/recording-mock.ts'

// What an OpenAI-compatible backend receives for a chat request: the client's body with the model the
// backend knows and, for a stream, stream_options.include_usage (so every stream is accounted). A backend
// that knows the model by its public name gets the client's body as it is, and nothing the gateway adds
// for one request leaks into the next request's body.
describe('the body an OpenAI-compatible backend receives', () => {
  let mock: RecordingMock
  let tg: TestGateway
  before(async () => {
    mock = await startRecordingMock()
    tg = await startTestGateway(`
backends:
  - { id: up, type: openai-compatible, url: ${mock.url}/v1, models: { alias: gpt-4o } }
models:
  - { name: gpt-4o-mini, target: up }
  - { name: alias, target: up }
consumers:
  - { id: team-a, keys: [ { value: sk-test-key-team-a } ] }
`)
  })
  after(async () => { await tg.close(); await mock.close() })

  const send = async (body: Record<string, unknown>) => {
    const res = await fetch(`${tg.url}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body: JSON.stringify(body) })
    const text = await res.text()
    assert.equal(res.status, 200, text)
    return { sent: JSON.parse(mock.last().body) as Record<string, unknown>, text }
  }
  const messages = [{ role: 'user', content: 'hello' }]

  it('a model known by its public name: the body exactly as the client sent it', async () => {
    const body = { model: 'gpt-4o-mini', messages, max_tokens: 5, temperature: 0.2, user: 'u-1' }
    assert.deepEqual((await send(body)).sent, body)
  })

  it('a mapped model: the same body with the backend\'s model name', async () => {
    const { sent } = await send({ model: 'alias', messages, max_tokens: 5 })
    assert.deepEqual(sent, { model: 'gpt-4o', messages, max_tokens: 5 })
  })

  it('a stream asks for usage whether or not the client did, and only the client that asked sees it', async () => {
    const plain = await send({ model: 'gpt-4o-mini', messages, max_tokens: 5, stream: true })
    assert.deepEqual(plain.sent, { model: 'gpt-4o-mini', messages, max_tokens: 5, stream: true, stream_options: { include_usage: true } })
    assert.doesNotMatch(plain.text, /"usage":\{/, 'the usage chunk the gateway asked for is not passed on')

    const asked = await send({ model: 'gpt-4o-mini', messages, max_tokens: 5, stream: true, stream_options: { include_usage: true } })
    assert.deepEqual(asked.sent.stream_options, { include_usage: true })
    assert.match(asked.text, /"usage":\{/)

    // The next non-streaming request of the same shape goes up without stream_options: nothing was left behind.
    const next = { model: 'gpt-4o-mini', messages, max_tokens: 5 }
    assert.deepEqual((await send(next)).sent, next)
  })
})
