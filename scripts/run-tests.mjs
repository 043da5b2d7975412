#!/usr/bin/env node
// Runs every test file under test/ (recursively) with Node's built-in runner and tsx for TypeScript.
// Node 20's --test does not expand globs itself, hence this small finder.
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'

function find(dir) {
  const out = []
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) { if (name !== 'fixtures' && name !== 'helpers') out.push(...find(p)) }
    else if (/\.test\.ts$/.test(name)) out.push(p)
  }
  return out
}

const only = process.argv.slice(2)
const files = only.length ? only : find('test')
// --test-force-exit: a file whose tests are done ends even if a handle (a worker, a socket) was left open by a
// failed test, so one failure can never hang the whole run.
const args = ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-force-exit', ...files]
const res = spawnSync(process.execPath, args, { stdio: 'inherit', env: { ...process.env, SLUICE_TEST: '1' } })
process.exit(res.status ?? 1)
