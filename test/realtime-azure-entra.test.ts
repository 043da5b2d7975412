import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { startMockServer, type MockServer } from '../src/mock/llm.ts'
import type { MockRealtimeSessionInfo } from '../src/mock/realtime.ts'
import { startTestGateway, TEST_KEY, type TestGateway } from './helpers/gateway.ts'
import { nextEmitted, openRealtime } from './helpers/realtime.ts'

// Azure OpenAI Realtime with Entra ID: the gateway's managed identity (the mock's loopback identity endpoint)
// signs the backend handshake with a bearer token the mock issued; nothing leaves the machine.
const IDENTITY_SECRET = 'test-identity-secret-rt'
const REFUSED_CLIENT = 'refused-client-id'

describe('Realtime to Azure OpenAI with a managed identity', () => {
  let mock: MockServer
  let g: TestGateway
  before(async () => {
    mock = await startMockServer({ identityHeader: IDENTITY_SECRET, tokenTtlSeconds: 3600, identityRefusedClientIds: [REFUSED_CLIENT] })
    process.env.IDENTITY_ENDPOINT = `${mock.url}/msi/token`
    process.env.IDENTITY_HEADER = IDENTITY_SECRET
    g = await startTestGateway(`
backends:
  - { id: aoai-mi, type: azure-openai, url: ${mock.url}, apiVersion: v1, auth: { managedIdentity: {} }, models: { gpt-realtime: rt-deployment } }
  - { id: aoai-refused, type: azure-openai, url: ${mock.url}, apiVersion: v1, auth: { managedIdentity: { clientId: ${REFUSED_CLIENT} } } }
models:
  - { name: gpt-realtime, target: aoai-mi }
  - { name: gpt-realtime-nocred, target: aoai-refused }
consumers:
  - { id: team-a, keys: [ { value: ${TEST_KEY} } ] }
`)
  })
  after(async () => {
    await g?.close()
    await mock?.close()
    delete process.env.IDENTITY_ENDPOINT
    delete process.env.IDENTITY_HEADER
  })

  it('opens the backend session with an Entra token on the v1 path; without a token the handshake is 502', async () => {
    const opened = nextEmitted<MockRealtimeSessionInfo>(mock.realtime.events, 'open', 15000)
    const c = await openRealtime(`${g.url}/openai/v1`, TEST_KEY, 'gpt-realtime')
    const info = await opened
    assert.equal(info.path, '/openai/v1/realtime')
    assert.equal(info.model, 'rt-deployment')
    const bearer = String(info.headers.authorization ?? '')
    assert.match(bearer, /^Bearer mock-entra/)
    assert.equal(mock.identity.check(bearer.slice(7)), 'valid')
    assert.equal(info.headers['api-key'], undefined)
    await c.next('session.created')
    c.send({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'] } })
    c.send({ type: 'response.create' })
    assert.equal((await c.next('response.done')).response.status, 'completed')
    c.close()
    await c.closed()

    // The identity endpoint refuses this backend's identity: no token, so no session (and no key fallback).
    const sessionsBefore = mock.realtime.stats.sessions
    await assert.rejects(openRealtime(`${g.url}/openai/v1`, TEST_KEY, 'gpt-realtime-nocred'), (err: { status?: number }) => err.status === 502)
    assert.equal(mock.realtime.stats.sessions, sessionsBefore)
  })
})
