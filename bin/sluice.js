#!/usr/bin/env node
// Runs the TypeScript sources directly (tsx transpiles once at load; nothing runs through it per request).
import { register } from 'tsx/esm/api'
register()
const { main } = await import('../src/cli.ts')
main(process.argv.slice(2)).catch((err) => {
  process.stderr.write(`sluice: ${err && err.message ? err.message : String(err)}\n`)
  process.exit(1)
})
