import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SqliteLedgerStore } from '../src/stores/sqlite/ledger.ts'
import { authHeaders } from './helpers/gateway.ts'
import { spawnGateway } from './helpers/process.ts'

const dir = mkdtempSync(join(tmpdir(), 'sluice-ledger-kill-'))
after(() => rmSync(dir, { recursive: true, force: true }))

// Ports the kernel picks at each start (read from the start-up line): a port reused for the restart can be taken
// in between by a socket of a test running beside this one.
const config = (ledgerPath: string) => `
listen: { host: 127.0.0.1, port: 0, shutdownGrace: 20s }
admin: { host: 127.0.0.1, port: 0 }
logging: { level: warn }
# A long interval and big batches: at SIGTERM most records are still in the queue, so only the drain saves them.
ledger: { type: sqlite, path: ${ledgerPath}, flushInterval: 30s, batchSize: 5000 }
backends:
  - { id: m, type: mock, latency: 15ms, tokensPerSecond: 400, completionTokens: 8 }
models:
  - { name: gpt-4o-mini, target: m }
consumers:
  - { id: team-a, keys: [ { value: sk-test-key-team-a } ] }
`

test('SIGTERM under load: every request that got a response has its ledger row after restart', async () => {
  const ledgerPath = join(dir, 'ledger.db')
  const file = join(dir, 'kill.yaml')
  writeFileSync(file, config(ledgerPath))
  const gp = await spawnGateway(file)

  const answered: string[] = []
  let refused = 0
  let signalled = false
  let n = 0
  const worker = async (w: number) => {
    for (let i = 0; i < 400; i++) {
      const id = `kill-${w}-${i}`
      const stream = (w + i) % 2 === 0
      let res: Response
      try {
        res = await fetch(`${gp.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { ...authHeaders(), 'x-request-id': id },
          body: JSON.stringify({ model: 'gpt-4o-mini', stream, messages: [{ role: 'user', content: `request ${id}` }] }),
          signal: AbortSignal.timeout(30_000),
        })
      } catch {
        return // the listener is gone: the gateway stopped accepting
      }
      const text = await res.text().catch(() => null)
      if (res.status === 200 && text !== null && (!stream || text.endsWith('data: [DONE]\n\n'))) answered.push(id)
      else { refused++; if (signalled) return }
      if (++n === 150 && !signalled) {
        signalled = true
        gp.child.kill('SIGTERM')
      }
    }
  }
  await Promise.all(Array.from({ length: 12 }, (_, w) => worker(w)))
  assert.ok(signalled, 'the load reached the signal point')
  assert.equal(await gp.exited, 0, gp.output())
  assert.ok(answered.length >= 150, `answered ${answered.length}`)

  // Read the file the process left behind.
  const store = new SqliteLedgerStore(ledgerPath)
  const rows = await store.records({ requestIds: answered })
  const have = new Set(rows.map((r) => r.requestId))
  const missing = answered.filter((id) => !have.has(id))
  assert.deepEqual(missing, [], `${missing.length} answered requests have no ledger row (refused: ${refused})`)
  assert.ok(rows.every((r) => r.status === 200 && r.promptTokens > 0 && r.completionTokens === 8))
  const total = (await store.records()).length
  await store.close()

  // A restarted gateway reports them all.
  const again = await spawnGateway(file)
  try {
    // No admin.token in the file: `sluice start` generated one and printed it once on stderr.
    const token = /admin token \(generated[^)]*\): (\S+)/.exec(again.output())?.[1]
    assert.ok(token, 'the generated admin token is printed at start')
    const res = await fetch(`${again.adminUrl}/admin/usage?by=consumer`, { headers: { authorization: `Bearer ${token}` } })
    assert.equal(res.status, 200)
    const body = (await res.json()) as { rows: { key: string; requests: number }[] }
    assert.equal(body.rows.find((r) => r.key === 'team-a')?.requests, total)
    assert.ok(total >= answered.length)
  } finally {
    again.child.kill('SIGTERM')
    await again.exited
  }
})
