// The request every gateway benchmark sends (the consumer key of bench/configs/*.yaml, a short chat), and
// the per-run copy of a config that gives each gateway process its own SQLite ledger.
import { readFileSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'

export const BENCH_HEADERS = Object.freeze({ 'content-type': 'application/json', authorization: 'Bearer sk-bench-0123456789abcdef' })

const MESSAGES = [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content: 'Say hello in one short sentence.' }]

/** The benchmark's chat request body (gpt-4o-mini, 50 tokens at most), streamed when asked. */
export function benchBody({ stream = false } = {}) {
  return JSON.stringify({ model: 'gpt-4o-mini', messages: MESSAGES, max_tokens: 50, ...(stream ? { stream: true } : {}) })
}

/**
 * A copy of a bench config in `dir` whose SQLite ledger (`/tmp/sluice-bench-ledger-…` in the configs) lives in
 * `dir` too, named with `tag`: one ledger file and its crash journal belong to one process, and each run starts
 * from an empty one instead of the rows a previous run left in /tmp.
 */
export function ownConfig(configFile, dir, tag) {
  const own = join(dir, `${tag}-${basename(configFile)}`)
  writeFileSync(own, readFileSync(configFile, 'utf8').replaceAll('/tmp/sluice-bench-ledger-', join(dir, `ledger-${tag}-`)))
  return own
}
