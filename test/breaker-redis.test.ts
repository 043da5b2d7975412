import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { authHeaders, serviceAvailable, TEST_KEY } from './helpers/gateway.ts'
import { freePort, spawnGateway, type GatewayProcess } from './helpers/process.ts'
import { reply, startSwitchable, until, type SwitchableUpstream } from './helpers/upstreams.ts'

const redisUp = await serviceAvailable('redis')

async function chat(url: string) {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: authHeaders(),
    body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }),
  })
  await res.text()
  return { status: res.status, backend: res.headers.get('x-sluice-backend'), attempts: Number(res.headers.get('x-sluice-attempts')) }
}

describe('circuit breakers shared through Redis by several gateway processes', { skip: !redisUp }, () => {
  let upstream: SwitchableUpstream
  // The admin plane always has a token (a generated one when the config names none).
  const ADMIN_TOKEN = 'test-admin-token-breakers'
  const procs: GatewayProcess[] = []
  const admins: string[] = []
  const prefix = `sluice-test-brk-${randomBytes(6).toString('hex')}:`
  const dir = mkdtempSync(join(tmpdir(), 'sluice-brk-'))

  before(async () => {
    upstream = await startSwitchable()
    for (let i = 0; i < 2; i++) {
      const [port, adminPort] = [await freePort(), await freePort()]
      const file = join(dir, `gw${i}.yaml`)
      writeFileSync(file, `
listen: { host: 127.0.0.1, port: ${port} }
admin: { host: 127.0.0.1, port: ${adminPort}, token: ${ADMIN_TOKEN} }
logging: { level: warn }
ledger: { type: none }
store: { type: redis, url: "redis://127.0.0.1:6379", keyPrefix: "${prefix}" }
backends:
  - id: ptu
    type: openai-compatible
    url: ${upstream.url}
    circuitBreaker: { failures: 1, tripDuration: 10m, acceptRetryAfter: true }
  - { id: spare, type: mock }
pools:
  - { id: gpt-4o, strategy: priority, members: [ { backend: ptu, priority: 1 }, { backend: spare, priority: 2 } ] }
models:
  - { name: gpt-4o, target: gpt-4o }
consumers:
  - { id: team-a, keys: [ { value: ${TEST_KEY} } ] }
`)
      procs.push(await spawnGateway(file, port))
      admins.push(`http://127.0.0.1:${adminPort}`)
    }
  })

  after(async () => {
    for (const p of procs) {
      p.child.kill('SIGTERM')
      const code = await Promise.race([p.exited, new Promise((r) => setTimeout(() => r('timeout'), 10_000))])
      if (code === 'timeout') p.child.kill('SIGKILL')
    }
    await upstream?.close()
    rmSync(dir, { recursive: true, force: true })
    const { Redis } = await import('ioredis')
    const r = new Redis('redis://127.0.0.1:6379')
    const keys = await r.keys(`${prefix}*`)
    if (keys.length) await r.del(...keys)
    await r.quit()
  })

  it('a trip seen by one process is honoured by the other on its next request, and so is the recovery', async () => {
    const [a, b] = procs as [GatewayProcess, GatewayProcess]
    assert.equal((await chat(b.url)).backend, 'ptu', 'both start on the PTU')
    upstream.behave = reply(429, { 'retry-after': '2' })
    const tripped = await chat(a.url)
    assert.equal(tripped.status, 200)
    assert.equal(tripped.backend, 'spare')
    assert.equal(tripped.attempts, 2)
    const hits = upstream.hits
    const other = await chat(b.url)
    assert.equal(other.backend, 'spare')
    assert.equal(other.attempts, 1, 'process B never tried the PTU')
    assert.equal(upstream.hits, hits)
    const state = (await (await fetch(`${admins[1]}/admin/backends`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { backends: { id: string; state: string; lastFailure: { reason: string } }[] }
    const ptu = state.backends.find((x) => x.id === 'ptu')!
    assert.equal(ptu.state, 'open')
    assert.equal(ptu.lastFailure.reason, 'status 429')

    // After the Retry-After, one process's trial closes the circuit for both.
    upstream.behave = null
    await until(async () => (await chat(b.url)).backend === 'ptu', 15_000)
    assert.equal((await chat(a.url)).backend, 'ptu')
    const after = (await (await fetch(`${admins[0]}/admin/backends`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { backends: { id: string; state: string }[] }
    assert.equal(after.backends.find((x) => x.id === 'ptu')!.state, 'closed')
  })
})
