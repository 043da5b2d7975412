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
