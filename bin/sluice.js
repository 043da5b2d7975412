#!/usr/bin/env node
// Runs the compiled build (dist/, made by `npm run build`, which `npm install` runs) when it is at least as
// new as every source file; otherwise the TypeScript sources directly through tsx. The build saves the
// loader's memory (~28 MiB) and start-up time; the fallback means an edited source is never run stale.
import { existsSync, readdirSync, statSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { setFlagsFromString } from 'node:v8'

// Start-up keeps the gateway's young generation at V8's initial 1 MiB semi-space instead of growing it to
// 16 MiB (a 32 MiB new space that start-up's garbage fills once and an idle process never gives back: ~25 MiB
// of the idle RSS). Set here, before anything allocates, so every gateway process (cluster workers run this
// file too) has it; once the gateway listens, growth resumes (src/server/compact.ts), because pinned under
// load the young generation costs 15–25 % more CPU per request. An explicit --max-semi-space-size /
// --min-semi-space-size (command line or NODE_OPTIONS) wins: then this is skipped.
const semiSpaceGiven = /--(max|min)[-_]semi[-_]space[-_]size/.test([...process.execArgv, process.env.NODE_OPTIONS ?? ''].join(' '))
if (process.argv[2] === 'start' && !semiSpaceGiven) setFlagsFromString('--semi-space-growth-factor=1')

const root = fileURLToPath(new URL('..', import.meta.url))
const built = join(root, 'dist', 'src', 'cli.js')

function newestSource(dir) {
  // An image that ships only the build (no src/) runs it.
  if (!existsSync(dir)) return 0
  let newest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name)
    newest = Math.max(newest, entry.isDirectory() ? newestSource(p) : statSync(p).mtimeMs)
  }
  return newest
}

let main
if (process.env.SLUICE_FROM_SOURCE !== '1' && existsSync(built) && statSync(built).mtimeMs >= newestSource(join(root, 'src'))) {
  ;({ main } = await import(built))
} else {
  const { register } = await import('tsx/esm/api')
  register()
  ;({ main } = await import('../src/cli.ts'))
}
main(process.argv.slice(2)).catch((err) => {
  process.stderr.write(`sluice: ${err && err.message ? err.message : String(err)}\n`)
  process.exit(1)
})
