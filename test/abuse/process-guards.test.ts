import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'

/**
 * An error thrown outside any request (in a timer, a rejected promise nobody awaits) must not take the
 * gateway down: a real process runs a gateway, throws both kinds, and must go on answering, with the errors
 * logged without a stack and counted in sluice_process_errors_total.
 */
const SCRIPT = `
import { loadConfigText } from './src/config/load.ts'
import { builtinPolicies } from './src/policies/registry.ts'
import { createGateway } from './src/server/gateway.ts'
const registry = builtinPolicies()
const res = loadConfigText('listen: { host: 127.0.0.1, port: 0 }\\nadmin: { host: 127.0.0.1, port: 0, token: adm-token-1234 }\\nledger: { type: none }\\nbackends: [ { id: m, type: mock } ]\\nmodels: [ { name: gpt-4o-mini, target: m } ]', { registry, env: {} })
if (!res.ok) throw new Error('bad config')
const gw = await createGateway({ config: res.config, registry })
const { url, adminUrl } = await gw.listen()
setTimeout(() => { throw new Error('boom in a timer') }, 10)
setTimeout(() => { void Promise.reject(new Error('nobody awaits this')) }, 20)
setTimeout(async () => {
  const health = await fetch(url + '/healthz')
  const metrics = await (await fetch(adminUrl + '/metrics', { headers: { authorization: 'Bearer adm-token-1234' } })).text()
  process.stdout.write('\\nRESULT ' + JSON.stringify({ health: health.status, metrics: metrics.split('\\n').filter((l) => l.startsWith('sluice_process_errors_total')) }) + '\\n')
  await gw.close()
}, 200)
`

test('errors thrown outside any request are logged (no stack) and counted; the process keeps serving', { timeout: 60_000 }, async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d })
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { out += d })
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  assert.equal(code, 0, out)
  const result = JSON.parse(/RESULT (.*)/.exec(out)![1]!) as { health: number; metrics: string[] }
  assert.equal(result.health, 200, 'alive and answering after both errors')
  assert.ok(result.metrics.includes('sluice_process_errors_total{kind="uncaught_exception"} 1'), result.metrics.join('\n'))
  assert.ok(result.metrics.includes('sluice_process_errors_total{kind="unhandled_rejection"} 1'), result.metrics.join('\n'))
  assert.match(out, /boom in a timer/)
  assert.match(out, /nobody awaits this/)
  assert.ok(!/\n\s+at [^\n]+:\d+:\d+/.test(out) && !out.includes('"stack"'), `no stack in the log:\n${out}`)
})
