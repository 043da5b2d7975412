import { test } from 'node:test'
import assert from 'node:assert/strict'
import { closeSync, mkdtempSync, openSync, readFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { spawn } from 'node:child_process'
import { isRegularFile, logDestination } from '../src/telemetry/log-destination.ts'

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

// A regular file takes its batches synchronously (a 4 KiB copy into the page cache costs less than a thread-
// pool hand-off); a pipe (a container's stdout) keeps the asynchronous write, so a reader that stalls never
// blocks the event loop.
test('a file gets each full batch in the same turn; lines short of a batch still wait', () => {
  const { path, fd } = tempFile()
  assert.equal(isRegularFile(fd), true)
  const dest = logDestination(fd)
  const line = `{"msg":"${'x'.repeat(90)}"}\n` // 101 bytes
  for (let i = 0; i < 40; i++) dest.write(line) // 4,040 bytes: under one batch
  assert.equal(statSync(path).size, 0, 'under 4 KiB: held')
  dest.write(line) // 4,141 bytes: a batch
  assert.equal(statSync(path).size, 41 * 101, 'the batch is in the file before the writer yields')
  dest.write(line)
  assert.equal(statSync(path).size, 41 * 101, 'the next line waits for the next batch')
  dest.flushSync()
  assert.equal(readFileSync(path, 'utf8'), line.repeat(42))
  closeSync(fd)
})

test('a pipe is not taken for a file: its lines go through the asynchronous write, whole and in order', { timeout: 10_000 }, async () => {
  const cat = spawn('cat', [], { stdio: ['pipe', 'pipe', 'inherit'] })
  try {
    const fd = (cat.stdin as unknown as { _handle: { fd: number } })._handle.fd
    assert.equal(typeof fd, 'number')
    assert.equal(isRegularFile(fd), false)
    const n = 500
    const expected = Array.from({ length: n }, (_, i) => `{"i":${i}}\n`).join('')
    const out: Buffer[] = []
    let received = 0
    const all = new Promise<void>((resolve) => cat.stdout.on('data', (d: Buffer) => {
      out.push(d)
      received += d.length
      if (received >= expected.length) resolve()
    }))
    const dest = logDestination(fd)
    for (let i = 0; i < n; i++) dest.write(`{"i":${i}}\n`)
    // The gateway's flusher, faster: a short batch left while a write was out goes with the next flush. The
    // test's timeout fails it if the lines never all arrive.
    const flusher = setInterval(() => dest.flush(), 5)
    try { await all } finally { clearInterval(flusher) }
    assert.equal(Buffer.concat(out).toString('utf8'), expected)
  } finally {
    cat.kill()
  }
})
