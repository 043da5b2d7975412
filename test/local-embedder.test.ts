// The local USE-Lite embedder with the real model in its worker thread (no mock): output shape and quality
// direction, the main event loop staying responsive, batching, abort/timeout, shared handles, and the
// production start path (bin/sluice.js registers tsx in-process instead of passing --import).
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { acquireLocalEmbedder, EmbedError, LOCAL_EMBEDDER_DIMS } from '../src/cache/local-embedder.ts'

const cosine = (a: Float32Array, b: Float32Array): number => {
  let dot = 0, na = 0, nb = 0
  for (let i = 0; i < a.length; i++) { dot += a[i]! * b[i]!; na += a[i]! * a[i]!; nb += b[i]! * b[i]! }
  return dot / Math.sqrt(na * nb)
}

const embedder = acquireLocalEmbedder({ timeoutMs: 30_000 })
after(() => embedder.close())

test('embeddings have 512 unit-norm dimensions; a paraphrase is closer than an unrelated sentence', async () => {
  const [q, para, other, empty] = await embedder.embed([
    'What is the capital of France?',
    'Tell me the capital city of France.',
    'How long should I boil an egg?',
    '',
  ])
  assert.equal(embedder.dims, LOCAL_EMBEDDER_DIMS)
  for (const v of [q!, para!, other!, empty!]) {
    assert.equal(v.length, 512)
    assert.ok(v.every(Number.isFinite))
    assert.ok(Math.abs(Math.hypot(...v) - 1) < 1e-3, 'the model L2-normalizes its output')
  }
  assert.ok(cosine(q!, para!) > cosine(q!, other!) + 0.2, `paraphrase ${cosine(q!, para!)} vs unrelated ${cosine(q!, other!)}`)
  // Deterministic: the same text embeds to the same vector.
  const [again] = await embedder.embed(['What is the capital of France?'])
  assert.ok(cosine(q!, again!) > 0.9999)
})

test('the main event loop keeps running while the worker embeds', async () => {
  await embedder.embed(['warm up'])
  const texts = Array.from({ length: 96 }, (_, i) => `Request number ${i}: please summarise the quarterly report for the finance team and list the three biggest risks you see in it.`)
  let last = performance.now()
  let maxGap = 0
  let ticks = 0
  const timer = setInterval(() => { const now = performance.now(); maxGap = Math.max(maxGap, now - last); last = now; ticks++ }, 2)
  const started = performance.now()
  // Concurrent callers, as under load: the engine batches them into a few model runs.
  const results = await Promise.all(Array.from({ length: 8 }, (_, k) => embedder.embed(texts.slice(k * 12, (k + 1) * 12))))
  const elapsed = performance.now() - started
  clearInterval(timer)
  assert.equal(results.flat().length, 96)
  // Coarse, relative bound: run on this thread, one model run over these texts would stall the loop for
  // most of `elapsed`; off-thread, the loop keeps ticking through it.
  assert.ok(ticks >= 3, `the interval fired ${ticks} times in ${elapsed.toFixed(0)} ms`)
  assert.ok(maxGap < Math.max(elapsed / 2, 50), `longest event-loop gap ${maxGap.toFixed(1)} ms during ${elapsed.toFixed(0)} ms of embedding`)
})

test('concurrent calls each get their own vectors, in order', async () => {
  const a = ['The cat sat on the mat.', 'Quantum computers use qubits.']
  const b = ['Paris is in France.']
  const [alone] = await embedder.embed([b[0]!])
  const [ra, rb] = await Promise.all([embedder.embed(a), embedder.embed(b)])
  assert.equal(ra.length, 2)
  assert.equal(rb.length, 1)
  assert.ok(cosine(rb[0]!, alone!) > 0.9999)
  assert.ok(cosine(ra[0]!, alone!) < 0.9)
})

test('an aborted or timed-out call fails alone; the others still complete', async () => {
  const busy = embedder.embed(Array.from({ length: 32 }, (_, i) => `keep the worker busy ${i} with a longer sentence about nothing in particular`))
  const ctl = new AbortController()
  const aborted = embedder.embed(['never mind'], ctl.signal)
  ctl.abort()
  await assert.rejects(aborted, (e: unknown) => e instanceof EmbedError && e.code === 'aborted')
  const hurried = acquireLocalEmbedder({ timeoutMs: 1 })
  await assert.rejects(hurried.embed(['too slow for 1 ms behind a busy worker']), (e: unknown) => e instanceof EmbedError && e.code === 'timeout')
  await hurried.close()
  assert.equal((await busy).length, 32)
  const pre = new AbortController()
  pre.abort()
  await assert.rejects(embedder.embed(['x'], pre.signal), (e: unknown) => e instanceof EmbedError && e.code === 'aborted')
  await assert.rejects(embedder.embed(['x'.repeat(40_000)]), (e: unknown) => e instanceof EmbedError && e.code === 'too_long')
  assert.deepEqual(await embedder.embed([]), [])
})

test('handles share one engine; a closed handle refuses, the others keep working', async () => {
  const second = acquireLocalEmbedder()
  await second.close()
  await assert.rejects(second.embed(['hello']), (e: unknown) => e instanceof EmbedError && e.code === 'closed')
  const [v] = await embedder.embed(['still here'])
  assert.equal(v!.length, 512)
})

test('the worker starts when tsx is registered in-process (as bin/sluice.js does) and the process exits after close', () => {
  const root = fileURLToPath(new URL('..', import.meta.url))
  const script = `
    import { register } from 'tsx/esm/api'
    register()
    const { acquireLocalEmbedder } = await import('./src/cache/local-embedder.ts')
    const e = acquireLocalEmbedder({ timeoutMs: 30000 })
    const [v] = await e.embed(['hello world'])
    process.stdout.write('dims=' + v.length)
    await e.close()
  `
  const res = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: 45_000, env: { ...process.env, NODE_OPTIONS: '' } })
  assert.equal(res.status, 0, res.stderr)
  assert.equal(res.stdout, 'dims=512')
})
