import { test } from 'node:test'
import assert from 'node:assert/strict'
import { closeSync, mkdtempSync, openSync, readFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { logDestination } from '../src/telemetry/log-destination.ts'

// The gateway's log destination holds lines as bytes (src/telemetry/log-destination.ts). What must hold:
// every line reaches the file whole and in order, multi-byte text included (a batch is measured in bytes,
// not characters), lines wait for a batch of 4 KiB or a flush, and pino's own flush writes what waits.

function tempFile(): { path: string; fd: number } {
  const path = join(mkdtempSync(join(tmpdir(), 'sluice-logdest-')), 'log')
  return { path, fd: openSync(path, 'a') }
}

test('lines under one batch wait for the flush; after it the file holds exactly them', async () => {
  const { path, fd } = tempFile()
  const dest = logDestination(fd)
  const lines = ['{"a":1}\n', '{"b":"é✓ 漢字"}\n', '{"c":3}\n']
  for (const l of lines) dest.write(l)
  assert.equal(statSync(path).size, 0, 'held: less than a batch and no flush yet')
  await new Promise<void>((resolve, reject) => dest.flush((err) => (err ? reject(err) : resolve())))
  assert.equal(readFileSync(path, 'utf8'), lines.join(''))
  dest.flushSync()
  closeSync(fd)
})

test('a pino logger over it writes thousands of multi-byte lines whole and in order', async () => {
  const { path, fd } = tempFile()
  const dest = logDestination(fd)
  const logger = pino({ base: undefined, timestamp: false }, dest)
  const n = 3000
  for (let i = 0; i < n; i++) logger.info({ i, text: i % 3 === 0 ? 'ünïcödé ✓ 日本語' : 'plain' }, 'request')
  await new Promise<void>((resolve) => logger.flush(() => resolve()))
  dest.flushSync()
  const got = readFileSync(path, 'utf8').split('\n')
  assert.equal(got.pop(), '', 'the file ends with a whole line')
  assert.equal(got.length, n)
  for (let i = 0; i < n; i++) {
    assert.deepEqual(JSON.parse(got[i]!), { level: 30, i, text: i % 3 === 0 ? 'ünïcödé ✓ 日本語' : 'plain', msg: 'request' })
  }
  closeSync(fd)
})
