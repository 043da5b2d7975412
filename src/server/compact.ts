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
