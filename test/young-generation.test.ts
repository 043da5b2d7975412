import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { spawnGateway } from './helpers/process.ts'
import { serviceAvailable } from './helpers/gateway.ts'

const redisUp = await serviceAvailable('redis')

// bin/sluice.js keeps every gateway process's young generation at V8's initial size (1 MiB semi-spaces,
// 2 MiB of new space) instead of letting start-up's garbage grow it to 32 MiB that an idle process keeps.
// Proven from inside each process (the single gateway, and a cluster's primary and workers): a preloaded
// module writes its process's new-space capacity to a file every 100 ms, read once the gateway listens.
const dir = mkdtempSync(join(tmpdir(), 'sluice-young-gen-'))
const probe = join(dir, 'probe.mjs')
writeFileSync(probe, `import { getHeapSpaceStatistics } from 'node:v8'
import { writeFileSync } from 'node:fs'
setInterval(() => {
  const space = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')
  writeFileSync(process.env.SLUICE_TEST_PROBE_DIR + '/' + process.pid, String(space.space_size))
}, 100).unref()
`)
const MiB = 2 ** 20

async function newSpaces(workers: number, nodeOptions = ''): Promise<number[]> {
  const out = mkdtempSync(join(dir, 'run-'))
  const file = join(out, 'gw.yaml')
  writeFileSync(file, `listen: { host: 127.0.0.1, port: 0, workers: ${workers} }
admin: { enabled: false }
logging: { level: warn }
${workers > 1 ? `ledger: { type: sqlite, path: ${join(out, 'ledger.db')} }
store: { type: redis, url: "redis://127.0.0.1:6379", keyPrefix: "young-gen-${process.pid}:" }` : `ledger: { type: none }
store: { type: memory }`}
backends:
  - { id: fake, type: openai-compatible, url: http://127.0.0.1:1/v1 }
models:
  - { name: gpt-4o-mini, target: fake }
consumers:
  - { id: c, keys: [ { value: sk-young-gen-0123456789 } ] }
`)
  const gw = await spawnGateway(file, 0, { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${nodeOptions} --import ${pathToFileURL(probe).href}`, SLUICE_TEST_PROBE_DIR: out })
  try {
    // Every process has reported at least once after the listening line (100 ms period; 2 s at most).
    const want = workers > 1 ? workers + 1 : 1
    const deadline = Date.now() + 2000
    let files: string[] = []
    do {
      await new Promise((r) => setTimeout(r, 300))
      files = readdirSync(out).filter((f) => /^\d+$/.test(f))
    } while (files.length < want && Date.now() < deadline)
    assert.equal(files.length, want, 'processes that reported')
    return files.map((f) => Number(readFileSync(join(out, f), 'utf8')))
  } finally {
    gw.child.kill('SIGKILL')
    await gw.exited
  }
}

test('a gateway process keeps a 2 MiB new space after start-up', async () => {
  for (const size of await newSpaces(1)) assert.ok(size <= 2 * MiB, `new space ${(size / MiB).toFixed(1)} MiB`)
})

test('so do a cluster primary and its workers (Redis store, as workers require)', { skip: !redisUp }, async () => {
  for (const size of await newSpaces(2)) assert.ok(size <= 2 * MiB, `new space ${(size / MiB).toFixed(1)} MiB`)
})

test('an explicit --max-semi-space-size wins (the switch back to V8\'s default)', async () => {
  const sizes = await newSpaces(1, '--max-semi-space-size=16')
  assert.ok(sizes.some((s) => s > 2 * MiB), `new spaces ${sizes.map((s) => (s / MiB).toFixed(1)).join(', ')} MiB`)
})
