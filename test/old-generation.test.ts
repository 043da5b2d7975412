import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { idleGatewayYaml, spawnGateway } from './helpers/process.ts'

// A gateway process lets its old generation grow 30 % past what the last full collection kept, instead of
// V8's own factor (near 4× for a small heap on a large machine), so the short-lived garbage that reaches the
// old generation under load does not pile up to several times the live set. Proven from inside the process:
// a preloaded probe, signalled once the gateway listens, keeps 48 MiB alive, collects, and then makes old
// garbage (strings that survive a scavenge, then are dropped) while it records the old generation's size.
const dir = mkdtempSync(join(tmpdir(), 'sluice-old-gen-'))
const probe = join(dir, 'probe.mjs')
writeFileSync(probe, `import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { writeFileSync } from 'node:fs'
const MiB = 2 ** 20
const scratch = Buffer.alloc(MiB / 2)
const oldGeneration = (key) => getHeapSpaceStatistics().filter((s) => s.space_name === 'old_space' || s.space_name === 'large_object_space').reduce((n, s) => n + s[key], 0)
process.on('SIGUSR2', async () => {
  const live = []
  for (let i = 0; i < 96; i++) live.push(scratch.fill(i % 90 + 33).toString('latin1'))
  setFlagsFromString('--expose-gc')
  runInNewContext('gc')()
  const kept = oldGeneration('space_used_size')
  let peak = 0
  const recent = []
  for (let round = 0; round < 160; round++) {
    for (let i = 0; i < 5; i++) {
      // Held across the next scavenges (so promoted), then dropped: garbage in the old generation.
      recent.push(scratch.fill((round + i) % 90 + 33).toString('latin1'))
      if (recent.length > 8) recent.shift()
    }
    peak = Math.max(peak, oldGeneration('space_size'))
    await new Promise((r) => setImmediate(r))
  }
  writeFileSync(process.env.SLUICE_TEST_PROBE_OUT, JSON.stringify({ kept, peak, live: live.length }))
})
`)

async function peakOverKept(nodeArgs: string[]): Promise<number> {
  const out = mkdtempSync(join(dir, 'run-'))
  const file = join(out, 'gw.yaml')
  writeFileSync(file, idleGatewayYaml('sk-old-gen-0123456789'))
  const result = join(out, 'result.json')
  const gw = await spawnGateway(file, 0, { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${pathToFileURL(probe).href}`, SLUICE_TEST_PROBE_OUT: result }, nodeArgs)
  try {
    gw.child.kill('SIGUSR2')
    const deadline = Date.now() + 30_000
    while (!existsSync(result) && Date.now() < deadline && gw.child.exitCode === null) await new Promise((r) => setTimeout(r, 100))
    assert.ok(existsSync(result), `the probe reported within 30 s:\n${gw.output()}`)
    const { kept, peak, live } = JSON.parse(readFileSync(result, 'utf8')) as { kept: number; peak: number; live: number }
    assert.equal(live, 96)
    assert.ok(kept >= 48 * 2 ** 20, `kept ${(kept / 2 ** 20).toFixed(1)} MiB`)
    return peak / kept
  } finally {
    gw.child.kill('SIGKILL')
    await gw.exited
  }
}

test('the old generation grows about 30 % past what survived, not V8\'s several times', async () => {
  // 1.3× the kept heap, plus what is allocated while a collection's marking runs (measured 1.6–1.8× on an
  // idle and a loaded 2-core machine); V8's own factor reaches 2.5× here (next test).
  const ratio = await peakOverKept([])
  assert.ok(ratio >= 1.3 && ratio < 2.0, `peak old generation ${ratio.toFixed(2)}× what survived`)
})

test('an explicit --heap-growing-percent wins (the switch back to V8\'s growth)', async () => {
  const ratio = await peakOverKept(['--heap-growing-percent=300'])
  assert.ok(ratio > 2.2, `peak old generation ${ratio.toFixed(2)}× what survived`)
})
