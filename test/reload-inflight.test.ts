import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { loadConfigFile } from '../src/config/load.ts'
import { builtinPolicies } from '../src/policies/registry.ts'
import { createGateway } from '../src/server/gateway.ts'
import { TEST_KEY } from './helpers/gateway.ts'
import { spawnGateway } from './helpers/process.ts'
import { startRecordingBackend, type RecordingBackend } from './helpers/recorder.ts'

// A reload (POST /admin/config, or SIGHUP to a real `sluice start` process) while requests are in flight on a
// model whose target changes: the requests in flight finish on the configuration they started with (old
// backend, old deployment name), requests that arrive after the reload use the new one. "In flight" is made
// certain, not timed: the old backend holds a non-streamed request, and holds a stream after its first content
// event, until the test has seen the reload land and a new request answered.
const ADMIN = 'admin-token-reload'
const STREAM_TOKENS = 12

describe('reload while requests are in flight on a model that changes', () => {
  let oldB: RecordingBackend
  let newB: RecordingBackend
  const dir = mkdtempSync(join(tmpdir(), 'sluice-reload-'))

  before(async () => {
    oldB = await startRecordingBackend()
    newB = await startRecordingBackend()
  })
  after(async () => {
    await oldB?.close()
    await newB?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const config = (target: 'old' | 'new') => `
listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0, token: ${ADMIN} }
ledger: { type: none }
logging: { level: warn }
backends:
  - { id: old, type: openai-compatible, url: ${oldB.url}/v1, models: { gpt-4o-mini: old-deployment } }
  - { id: new, type: openai-compatible, url: ${newB.url}/v1, models: { gpt-4o-mini: new-deployment } }
models:
  - { name: gpt-4o-mini, target: ${target} }
consumers:
  - { id: team-a, keys: [ { value: ${TEST_KEY} } ] }
`

  const post = (url: string, body: Record<string, unknown>) => fetch(`${url}/v1/chat/completions`, {
    method: 'POST', headers: { authorization: `Bearer ${TEST_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello.' }], ...body }),
  })
  const waitFor = async (what: string, cond: () => boolean | Promise<boolean>) => {
    for (let i = 0; i < 500; i++) {
      if (await cond()) return
      await new Promise((r) => setTimeout(r, 20))
    }
    assert.fail(`${what}: not within 10 s`)
  }
  const version = async (adminUrl: string): Promise<number> => {
    const res = await fetch(`${adminUrl}/admin/config`, { headers: { authorization: `Bearer ${ADMIN}` } })
    assert.equal(res.status, 200)
    return ((await res.json()) as { version: number }).version
  }

  /** Starts a stream and a plain request on the old config, reloads with `reload`, and checks who finished where. */
  async function scenario(url: string, file: string, reload: () => Promise<void>): Promise<void> {
    const [oldSeen, newSeen] = [oldB.requests.length, newB.requests.length]
    // A stream in flight: the old backend sends its first content, then holds the rest.
    const releaseStream = oldB.holdStreamsAfterFirstContent()
    const stream = await post(url, { stream: true, max_tokens: STREAM_TOKENS })
    assert.equal(stream.status, 200)
    assert.equal(stream.headers.get('x-sluice-backend'), 'old')
    const reader = stream.body!.getReader()
    const dec = new TextDecoder()
    let streamed = ''
    while (!/"content":"[^"]/.test(streamed)) {
      const { value, done } = await reader.read()
      assert.ok(!done, 'the stream ended before its first content')
      streamed += dec.decode(value, { stream: true })
    }
    // A non-streamed request in flight: the old backend has it and holds it.
    const releasePlain = oldB.holdRequests()
    const plain = post(url, { max_tokens: 3 })
    let plainAnswered = false
    void plain.then(() => { plainAnswered = true })
    await waitFor('the old backend to receive the plain request', () => oldB.requests.length === oldSeen + 2)

    writeFileSync(file, config('new'))
    await reload()

    // A request after the reload goes to the new backend with the new deployment name.
    const fresh = await post(url, { max_tokens: 3 })
    assert.equal(fresh.status, 200)
    assert.equal(fresh.headers.get('x-sluice-backend'), 'new')
    await fresh.arrayBuffer()
    assert.equal(newB.requests.length, newSeen + 1)
    assert.equal(newB.requests.at(-1)!.body.model, 'new-deployment')

    // Both were still in flight at the reload, and are still now.
    assert.equal(plainAnswered, false, 'the plain request was still waiting')
    assert.equal(oldB.stalled, 1, 'the stream was still open, held by the old backend')
    // The ones in flight finish, on the old configuration.
    releasePlain()
    releaseStream()
    const p = await plain
    assert.equal(p.status, 200)
    assert.equal(p.headers.get('x-sluice-backend'), 'old')
    assert.equal(((await p.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens, 3)
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      streamed += dec.decode(value, { stream: true })
    }
    assert.match(streamed, /data: \[DONE\]\n\n$/, 'the stream that began before the reload finished cleanly')
    assert.equal((streamed.match(/"content":"[^"]/g) ?? []).length, STREAM_TOKENS, 'every token of the stream arrived')
    const oldReqs = oldB.requests.slice(oldSeen)
    assert.equal(oldReqs.length, 2, 'nothing else reached the old backend')
    for (const r of oldReqs) assert.equal(r.body.model, 'old-deployment')
  }

  it('POST /admin/config', { timeout: 30_000 }, async () => {
    const file = join(dir, `inproc-${randomUUID().slice(0, 8)}.yaml`)
    writeFileSync(file, config('old'))
    const loaded = await loadConfigFile(file, { registry: builtinPolicies() })
    assert.ok(loaded.ok)
    const gw = await createGateway({ config: loaded.config, configFile: file, logger: pino({ level: 'silent' }) })
    const { url, adminUrl } = await gw.listen()
    try {
      const v1 = await version(adminUrl!)
      await scenario(url, file, async () => {
        const r = await fetch(`${adminUrl}/admin/config`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } })
        assert.equal(r.status, 200)
        assert.equal(((await r.json()) as { version: number }).version, v1 + 1)
      })
    } finally {
      await gw.close()
    }
  })

  it('SIGHUP to a running `sluice start` process', { timeout: 120_000 }, async () => {
    const file = join(dir, `hup-${randomUUID().slice(0, 8)}.yaml`)
    writeFileSync(file, config('old'))
    const gp = await spawnGateway(file)
    try {
      const v1 = await version(gp.adminUrl)
      await scenario(gp.url, file, async () => {
        gp.child.kill('SIGHUP')
        await waitFor('the SIGHUP reload to land', async () => (await version(gp.adminUrl)) === v1 + 1)
        assert.match(gp.output(), /configuration reloaded/)
      })
    } finally {
      gp.child.kill('SIGTERM')
      await gp.exited
    }
  })
})
