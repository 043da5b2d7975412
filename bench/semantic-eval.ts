/**
 * Semantic-cache hit quality on the labelled pair sets (test/fixtures/semantic-pairs.json and
 * semantic-pairs-faq.json; sources in test/fixtures/semantic-pairs.SOURCES.md): for each pair,
 * the cosine distance of the two prompts' embeddings, then whether the semantic cache would serve one's
 * answer for the other (distance ≤ threshold, and the guard agrees). Prints precision / recall of hits at the
 * default threshold (and a sweep), with and without the guard, for:
 *  - backend embeddings: the mock LLM's `/v1/embeddings` over HTTP (deterministic feature hashing),
 *  - local embeddings: USE-Lite in its worker thread (src/cache/local-embedder.ts), unless --no-local.
 *
 *   node --import tsx bench/semantic-eval.ts [--no-local] [--threshold 0.25] [--misses]
 */
import { readFileSync } from 'node:fs'
import { guardCheck, promptFacts } from '../src/cache/guard.ts'
import { parseEmbeddings } from '../src/cache/backend-embeddings.ts'
import { acquireLocalEmbedder } from '../src/cache/local-embedder.ts'
import { startMockServer } from '../src/mock/llm.ts'
import { DEFAULT_SCORE_THRESHOLD } from '../src/policies/semantic-cache/index.ts'

interface Pair { a: string; b: string; expect: 'hit' | 'miss'; kind: string }
const PAIR_FILES = ['semantic-pairs.json', 'semantic-pairs-faq.json']
const pairs = PAIR_FILES.flatMap((f) => (JSON.parse(readFileSync(new URL(`../test/fixtures/${f}`, import.meta.url), 'utf8')) as { pairs: Pair[] }).pairs)
const args = process.argv.slice(2)
const ti = args.indexOf('--threshold')
const threshold = ti >= 0 ? Number(args[ti + 1]) : DEFAULT_SCORE_THRESHOLD
const texts = [...new Set(pairs.flatMap((p) => [p.a, p.b]))]

function distance(x: Float32Array, y: Float32Array): number {
  let dot = 0, nx = 0, ny = 0
  for (let i = 0; i < x.length; i++) { dot += x[i]! * y[i]!; nx += x[i]! * x[i]!; ny += y[i]! * y[i]! }
  return 1 - dot / Math.sqrt(nx * ny)
}

const verdicts = pairs.map((p) => guardCheck(promptFacts(p.a), promptFacts(p.b)))
const guardOk = verdicts.map((v) => v.ok)
const guardReason = verdicts.map((v) => (v.ok ? '' : `${v.reason} ${v.detail}`))

function score(dist: number[], t: number, guard: boolean) {
  let tp = 0, fp = 0
  const wrong: string[] = []
  pairs.forEach((p, i) => {
    if (dist[i]! > t || (guard && !guardOk[i])) return
    if (p.expect === 'hit') tp++
    else { fp++; wrong.push(`${p.kind}: ${p.a} | ${p.b}`) }
  })
  const positives = pairs.filter((p) => p.expect === 'hit').length
  return { tp, fp, precision: tp + fp ? tp / (tp + fp) : 1, recall: tp / positives, wrong }
}

function report(name: string, vectors: Map<string, Float32Array>): void {
  const dist = pairs.map((p) => distance(vectors.get(p.a)!, vectors.get(p.b)!))
  const mean = (kind: 'hit' | 'miss') => { const d = dist.filter((_, i) => pairs[i]!.expect === kind); return d.reduce((s, x) => s + x, 0) / d.length }
  console.log(`\n## ${name}`)
  console.log(`pairs: ${pairs.length} (${pairs.filter((p) => p.expect === 'hit').length} paraphrases, ${pairs.filter((p) => p.expect === 'miss').length} one-fact changes); mean distance paraphrase ${mean('hit').toFixed(3)}, one-fact change ${mean('miss').toFixed(3)}`)
  console.log('| threshold | guard | hits served | wrong hits | precision | recall |')
  console.log('|---|---|---|---|---|---|')
  const sweep = [...new Set([0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, threshold])].sort((x, y) => x - y)
  for (const t of sweep) for (const g of [true, false]) {
    const s = score(dist, t, g)
    const mark = t === threshold && g ? ' **(default)**' : ''
    console.log(`| ${t}${mark} | ${g ? 'on' : 'off'} | ${s.tp + s.fp} | ${s.fp} | ${(s.precision * 100).toFixed(1)}% | ${(s.recall * 100).toFixed(1)}% |`)
  }
  const d = score(dist, threshold, true)
  if (d.wrong.length) console.log('wrong hits at the default:\n' + d.wrong.join('\n'))
  if (args.includes('--misses')) {
    const missed = pairs.filter((p, i) => p.expect === 'hit' && (dist[i]! > threshold || !guardOk[i]))
    console.log('paraphrases missed at the default:\n' + missed.map((p) => `${dist[pairs.indexOf(p)]!.toFixed(3)} ${guardOk[pairs.indexOf(p)] ? '' : '[guard: ' + guardReason[pairs.indexOf(p)] + '] '}${p.a} | ${p.b}`).join('\n'))
  }
}

async function main(): Promise<void> {
  console.log(`# semantic-cache pair evaluation — default scoreThreshold ${threshold}, guard on by default`)
  const mock = await startMockServer({ port: 0, host: '127.0.0.1' })
  try {
    const res = await fetch(`${mock.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'text-embedding-3-small', input: texts }) })
    const vs = parseEmbeddings((await res.json()) as Record<string, unknown>, texts.length)
    report('backend embeddings: mock /v1/embeddings (text-embedding-3-small, feature hashing, 256 dims)', new Map(texts.map((t, i) => [t, vs[i]!])))
  } finally {
    await mock.close()
  }
  if (!args.includes('--no-local')) {
    const e = acquireLocalEmbedder({ timeoutMs: 120_000 })
    try {
      const vs = await e.embed(texts)
      report('local embeddings: USE-Lite (512 dims, worker thread)', new Map(texts.map((t, i) => [t, vs[i]!])))
    } finally {
      await e.close()
    }
  }
}

await main()
