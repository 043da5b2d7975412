// RequestAbort: the request path's abort without an AbortSignal per request (src/core/request-abort.ts).
// What it must keep of AbortSignal's behaviour: listeners run once, in order, on the abort; a removed one or
// one added after the abort never runs; a real AbortSignal asked for before or after the abort follows it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { RequestAbort, realSignal } from '../src/core/request-abort.ts'

test('listeners run once, in the order added, and only on the abort', () => {
  const a = new RequestAbort()
  const ran: string[] = []
  a.addEventListener('abort', () => ran.push('first'))
  a.addEventListener('abort', () => ran.push('second'))
  assert.equal(a.aborted, false)
  assert.deepEqual(ran, [], 'nothing runs before the abort')
  a.abort()
  a.abort()
  assert.equal(a.aborted, true)
  assert.deepEqual(ran, ['first', 'second'], 'each listener once, in order, however often abort is called')
})

test('a removed listener does not run, the one left does; one added after the abort never runs', () => {
  const a = new RequestAbort()
  const ran: string[] = []
  const removed = () => ran.push('removed')
  a.addEventListener('abort', removed)
  a.addEventListener('abort', () => ran.push('kept'))
  a.removeEventListener('abort', removed)
  a.removeEventListener('abort', () => {}) // never added: nothing changes
  a.abort()
  a.addEventListener('abort', () => ran.push('late'))
  assert.deepEqual(ran, ['kept'])
})

test('the real AbortSignal follows it whether asked for before or after the abort', () => {
  const before = new RequestAbort()
  const signal = before.signal
  assert.equal(before.signal, signal, 'one signal, made once')
  let heard = 0
  signal.addEventListener('abort', () => heard++)
  assert.equal(signal.aborted, false)
  before.abort()
  assert.equal(signal.aborted, true)
  assert.equal(heard, 1)

  const after = new RequestAbort()
  after.abort()
  assert.equal(after.signal.aborted, true)
  assert.equal(after.signal.reason?.name, 'AbortError')
})

test('realSignal gives a RequestAbort its signal and passes a real AbortSignal through', () => {
  const a = new RequestAbort()
  assert.ok(realSignal(a) instanceof AbortSignal)
  assert.equal(realSignal(a), a.signal)
  const c = new AbortController()
  assert.equal(realSignal(c.signal), c.signal)
})

test('a throwing listener does not stop the others, and its error still surfaces (as from an EventTarget)', () => {
  // In a child process: the error surfaces as an uncaught exception, which the test runner would take as this test's failure.
  const script = `
    import { RequestAbort } from ${JSON.stringify(new URL('../src/core/request-abort.ts', import.meta.url).href)}
    process.on('uncaughtException', (err) => { console.log('uncaught:' + err.message) })
    const a = new RequestAbort()
    a.addEventListener('abort', () => { throw new Error('boom') })
    a.addEventListener('abort', () => console.log('second ran'))
    a.abort()
    console.log('abort returned')
  `
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 })
  assert.equal(r.status, 0, r.stderr)
  assert.deepEqual(r.stdout.trim().split('\n'), ['second ran', 'abort returned', 'uncaught:boom'])
})
