import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startMockServer, type MockServer } from '../src/mock/llm.ts'
import { startTestGateway, type TestGateway } from './helpers/gateway.ts'
import { startGoogleTokenServer, type GoogleTokenServer } from './helpers/google-token-server.ts'

const KEY = 'sk-passthrough-google-a'
const PATH = '/v1/projects/my-proj/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent'

// A Vertex AI native path through a passthrough route: the gateway's Google OAuth token (a service account's
// JWT grant at a loopback token server, checked there; the mock accepts only tokens its identity endpoint issued).
describe('passthrough with Google OAuth (Vertex AI native paths)', () => {
  let mock: MockServer
  let tokens: GoogleTokenServer
  let gw: TestGateway
  const dir = mkdtempSync(join(tmpdir(), 'sluice-pt-google-'))

  before(async () => {
    mock = await startMockServer()
    tokens = await startGoogleTokenServer(mock.url)
    gw = await startTestGateway(`
backends:
  - { id: vtx, type: vertex, url: ${mock.url}, project: my-proj, region: us-central1, auth: { google: { credentialsFile: ${tokens.serviceAccountFile(dir)} } } }
passthrough:
  - { prefix: /native/vertex, backend: vtx }
products: [ { id: standard } ]
consumers:
  - { id: team-a, product: standard, keys: [ { value: ${KEY} } ] }
`)
  })
  after(async () => {
    await gw.close()
    await tokens.close()
    await mock.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('forwards with the backend\'s OAuth token, never the client\'s bearer', async () => {
    const body = JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'Hello Vertex' }] }], generationConfig: { maxOutputTokens: 3 } })
    const res = await fetch(`${gw.url}/native/vertex${PATH}`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body })
    assert.equal(res.status, 200, await res.clone().text())
    const answer = (await res.json()) as { usageMetadata: { candidatesTokenCount: number } }
    assert.equal(answer.usageMetadata.candidatesTokenCount, 3)
    assert.equal(tokens.grants, 1)
    // Contrast: the consumer's own bearer sent straight to the mock is refused there.
    const direct = await fetch(`${mock.url}${PATH}`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body })
    assert.equal(direct.status, 401)
  })
})
