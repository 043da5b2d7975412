import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

/**
 * One full garbage collection, for when start-up is done and before the first request: what loading the
 * configuration, the tokenizer's tables and the modules left behind is freed now rather than whenever V8's
 * next major GC comes (an idle gateway has none: its heap kept the start-up garbage). Costs one pause of
 * ~0.1–0.2 s at start, none per request. V8 exposes the collector to scripts only behind --expose-gc,
 * which can be set at run time; the function is taken from a fresh context so the flag's global `gc`
 * never appears in the gateway's own.
 */
export function collectStartupGarbage(): void {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as (() => void) | undefined
  if (typeof gc === 'function') gc()
}

/**
 * Lets the young generation grow again under load, once start-up is done (V8's default growth factor, 2).
 * bin/sluice.js pins it at its initial 1 MiB semi-space for start-up, so the garbage of loading does not
 * leave an idle process holding 32 MiB of new space; kept pinned under load, the many small scavenges cost
 * 15–25 % more CPU per request at saturation (BENCHMARKS.md, "Young generation: pinned or growing"), so
 * traffic gets the default. A growth factor the operator chose (command line or NODE_OPTIONS) is left alone.
 */
export function resumeYoungGenerationGrowth(): void {
  const given = /--semi[-_]space[-_]growth[-_]factor/.test([...process.execArgv, process.env.NODE_OPTIONS ?? ''].join(' '))
  if (!given) setFlagsFromString('--semi-space-growth-factor=2')
}

/**
 * How far the old generation may grow past what the last full collection left alive before the next one:
 * 30 % (V8 picks 1.1–4× by its own estimate of collection speed, and for a gateway's small live set it picks
 * near the top). Under load most of what reaches the old generation is short-lived (a ledger record waiting
 * for its batch, a client timer waiting for its tick) and dies there; with V8's factor a saturated governed
 * gateway held ~60 MiB of old space for ~22 MiB alive. The collections this adds are of that small live set
 * (an A/B at saturation: 1.016× CPU per request, peak RSS −28 MiB; BENCHMARKS.md, issue 16's run of 13:27,
 * "The old generation grows 30 % past what survived").
 * Set before the start-up collection, so the first limit is already computed with it. A growing percent the
 * operator chose is left alone (`node --heap-growing-percent=N bin/sluice.js start`; V8 refuses it in
 * NODE_OPTIONS).
 */
const OLD_GENERATION_GROWING_PERCENT = 30

export function boundOldGenerationGrowth(): void {
  const given = process.execArgv.some((a) => /^--heap[-_]growing[-_]percent/.test(a))
  if (!given) setFlagsFromString(`--heap-growing-percent=${OLD_GENERATION_GROWING_PERCENT}`)
}
