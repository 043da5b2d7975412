import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { hostname } from 'node:os'
import pino from 'pino'
import { Journal, type JournalPosition, type ReplayedRecord } from '../src/ledger/journal.ts'

const root = mkdtempSync(join(tmpdir(), 'sluice-journal-'))
after(() => rmSync(root, { recursive: true, force: true }))
let n = 0
const freshDir = () => join(root, `d${n++}`)

function capture() {
  const lines: Record<string, unknown>[] = []
  const logger = pino({ level: 'info', base: undefined }, { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>) } })
  return { logger, lines }
}

async function replayAll(j: Journal): Promise<ReplayedRecord[]> {
  const got: ReplayedRecord[] = []
  await j.replay(async (chunk) => { got.push(...chunk) }, 3)
  return got
}

/** What a SIGKILL leaves: the lock names a process that no longer runs (the journal's files stay as they were). */
const DEAD_PID = spawnSync(process.execPath, ['-e', '0']).pid
function die(dir: string, slot = '0'): void {
  writeFileSync(join(dir, `ledger-${slot}.lock`), JSON.stringify({ pid: DEAD_PID, host: hostname(), at: new Date().toISOString() }))
}

const rec = (i: number) => ({ requestId: `r-${i}`, promptTokens: i, text: 'x'.repeat(40) })
const segmentFiles = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.journal')).sort()

test('a process that dies leaves every appended record for the next one to replay, in order', async () => {
  const dir = freshDir()
  const a = Journal.open({ dir, maxBytes: 1 << 20 })
  for (let i = 0; i < 25; i++) assert.notEqual(typeof a.append(i % 5 === 0 ? 'messages' : 'usage', rec(i)), 'string')
  die(dir) // no close(): the process "died". A new life takes the same slot (the lock's owner is gone).
  const b = Journal.open({ dir, maxBytes: 1 << 20 })
  assert.equal(b.slot, a.slot)
  assert.equal(b.replayPending, true)
  const got = await replayAll(b)
  assert.deepEqual(got.map((r) => (r.value as { requestId: string }).requestId), Array.from({ length: 25 }, (_, i) => `r-${i}`))
  assert.deepEqual(got.filter((r) => r.kind === 'messages').length, 5)
  b.close()
})

test('a journal cut mid-record (torn write) is read up to the last whole record, and the damage is logged', async () => {
  const dir = freshDir()
  const a = Journal.open({ dir, maxBytes: 1 << 20 })
  for (let i = 0; i < 10; i++) a.append('usage', rec(i))
  const [file] = segmentFiles(dir)
  const path = join(dir, file!)
  const size = statSync(path).size
  truncateSync(path, size - 7) // the last write reached the file only in part
  const { logger, lines } = capture()
  die(dir)
  const b = Journal.open({ dir, maxBytes: 1 << 20, logger })
  const got = await replayAll(b)
  assert.deepEqual(got.map((r) => (r.value as { requestId: string }).requestId), Array.from({ length: 9 }, (_, i) => `r-${i}`))
  const warn = lines.find((l) => l.msg === 'ledger journal: damaged record; reading of this segment stops at the last whole record')
  assert.ok(warn, JSON.stringify(lines))
  assert.equal(warn.damage, 'torn')
  assert.equal(warn.offset, got.at(-1)!.pos.off)
  assert.equal(warn.discardedBytes, size - 7 - got.at(-1)!.pos.off)
  assert.equal(b.stats().damaged, 1)
  b.close()
})

test('a damaged byte fails the checksum: reading stops before that record', async () => {
  const dir = freshDir()
  const a = Journal.open({ dir, maxBytes: 1 << 20 })
  const positions = Array.from({ length: 6 }, (_, i) => a.append('usage', rec(i)))
  const path = join(dir, segmentFiles(dir)[0]!)
  const buf = readFileSync(path)
  const third = positions[2] as { off: number }
  buf[third.off + 20] ^= 0xff // inside the fourth record's payload
  writeFileSync(path, buf)
  const { logger, lines } = capture()
  die(dir)
  const b = Journal.open({ dir, maxBytes: 1 << 20, logger })
  const got = await replayAll(b)
  assert.deepEqual(got.map((r) => (r.value as { requestId: string }).requestId), ['r-0', 'r-1', 'r-2'])
  assert.equal(lines.find((l) => l.damage !== undefined)?.damage, 'checksum')
  b.close()
})

test('the checkpoint follows commits: a restart replays only what was not committed', async () => {
  const dir = freshDir()
  const a = Journal.open({ dir, maxBytes: 1 << 20 })
  const pos = Array.from({ length: 10 }, (_, i) => a.append('usage', rec(i)))
  a.committed('usage', pos.slice(0, 6) as never)
  await new Promise((r) => setImmediate(r)) // the checkpoint is asked for on the next turn
  await a.settled() // and written off the event loop
  die(dir)
  const b = Journal.open({ dir, maxBytes: 1 << 20 })
  const got = await replayAll(b)
  assert.deepEqual(got.map((r) => (r.value as { requestId: string }).requestId), ['r-6', 'r-7', 'r-8', 'r-9'])
  // Replayed records committed in turn: the next life has nothing to replay, and a clean close leaves no files.
  b.committed('usage', got.map((r) => r.pos))
  b.close()
  await b.settled() // a checkpoint write still in flight at the stop removes its temporary file
  assert.deepEqual(readdirSync(dir).filter((f) => !f.endsWith('.lock')), [])
  const c = Journal.open({ dir, maxBytes: 1 << 20 })
  assert.equal(c.replayPending, false)
  assert.deepEqual(await replayAll(c), [])
  c.close()
})

test('usage and message records commit independently; the checkpoint waits for the slower kind', async () => {
  const dir = freshDir()
  const a = Journal.open({ dir, maxBytes: 1 << 20 })
  const usage: unknown[] = [], messages: unknown[] = []
  for (let i = 0; i < 8; i++) (i % 2 ? messages : usage).push(a.append(i % 2 ? 'messages' : 'usage', rec(i)))
  a.committed('usage', usage as never)
  await new Promise((r) => setImmediate(r))
  await a.settled()
  die(dir)
  const b = Journal.open({ dir, maxBytes: 1 << 20 })
  const got = await replayAll(b)
  // Every message log comes back; committed usage records in the same stretch come back too (the store ignores them).
  assert.deepEqual(got.filter((r) => r.kind === 'messages').map((r) => (r.value as { requestId: string }).requestId), ['r-1', 'r-3', 'r-5', 'r-7'])
  assert.deepEqual(got.map((r) => (r.value as { requestId: string }).requestId), ['r-0', 'r-1', 'r-2', 'r-3', 'r-4', 'r-5', 'r-6', 'r-7'])
  // Once the message logs are committed as well, nothing is left to replay.
  b.committed('messages', got.filter((r) => r.kind === 'messages').map((r) => r.pos))
  b.committed('usage', got.filter((r) => r.kind === 'usage').map((r) => r.pos))
  b.close()
  const c = Journal.open({ dir, maxBytes: 1 << 20 })
  assert.equal(c.replayPending, false)
  c.close()
  return
  b.close()
})

test('bounded: past maxBytes records are refused and counted; segments behind the checkpoint are deleted, which makes room again', async () => {
  const dir = freshDir()
  const j = Journal.open({ dir, maxBytes: 256 * 1024, segmentBytes: 64 * 1024 })
  const pos: JournalPosition[] = []
  let full = 0
  for (let i = 0; i < 4000; i++) {
    const p = j.append('usage', rec(i))
    if (p === 'full') full++
    else if (p === 'failed') assert.fail('a write failed')
    else pos.push(p)
  }
  const frame = 9 + JSON.stringify(rec(1000)).length
  assert.ok(full > 0 && pos.length > 0)
  assert.ok(j.stats().bytes <= 256 * 1024 && j.stats().bytes > 256 * 1024 - 2 * frame, `bytes ${j.stats().bytes}`)
  assert.equal(j.stats().refused, full)
  assert.ok(segmentFiles(dir).length >= 4, segmentFiles(dir).join(','))
  j.committed('usage', pos)
  await new Promise((r) => setImmediate(r))
  await j.settled() // segments behind the checkpoint are deleted off the event loop
  // Only the segment being written is left.
  assert.equal(segmentFiles(dir).length, 1)
  assert.ok(j.stats().bytes < 64 * 1024)
  assert.notEqual(typeof j.append('usage', rec(1)), 'string')
  j.close()
})

test('processes sharing a directory take different slots; a named slot held by a live process is refused', async () => {
  const dir = freshDir()
  const a = Journal.open({ dir, maxBytes: 1 << 20 })
  // Slot 1 is held by another live process (our parent stands in for it).
  writeFileSync(join(dir, 'ledger-1.lock'), JSON.stringify({ pid: process.ppid, host: hostname(), at: '' }))
  const b = Journal.open({ dir, maxBytes: 1 << 20 })
  assert.deepEqual([a.slot, b.slot], ['0', '2'])
  assert.throws(() => Journal.open({ dir, maxBytes: 1 << 20, slot: '1' }), /held by a running process/)
  const named = Journal.open({ dir, maxBytes: 1 << 20, slot: 'w7' })
  assert.equal(named.slot, 'w7')
  a.append('usage', rec(1)); b.append('usage', rec(2)); named.append('usage', rec(3))
  assert.deepEqual(segmentFiles(dir), ['ledger-0-0000000001.journal', 'ledger-2-0000000001.journal', 'ledger-w7-0000000001.journal'])
  a.close(); b.close(); named.close()
})

test('ledger.journal config: on by default beside the SQLite file, every knob parsed, `false` turns it off', async () => {
  const { loadConfigText } = await import('../src/config/load.ts')
  const { builtinPolicies } = await import('../src/policies/registry.ts')
  const { journalSettingsOf } = await import('../src/ledger/journal-config.ts')
  const parse = (yaml: string) => {
    const r = loadConfigText(yaml, { registry: builtinPolicies() })
    assert.ok(r.ok, JSON.stringify(!r.ok && r.problems))
    return journalSettingsOf(r.config.ledger)
  }
  assert.deepEqual(parse('ledger: { type: sqlite, path: /var/lib/sluice/ledger.db }\n'), { dir: '/var/lib/sluice/journal', maxBytes: 256 * 1024 * 1024, segmentBytes: 8 * 1024 * 1024, fsyncInterval: 0 })
  assert.deepEqual(parse('ledger: { type: postgres, url: "postgres://x@127.0.0.1/db", journal: { dir: /data/j, maxBytes: 1GiB, segmentBytes: 4MiB, fsyncInterval: 1s } }\n'),
    { dir: '/data/j', maxBytes: 1024 ** 3, segmentBytes: 4 * 1024 * 1024, fsyncInterval: 1000 })
  assert.equal(parse('ledger: { type: sqlite, path: /tmp/l.db, journal: false }\n'), null)
  assert.equal(parse('ledger: { type: none }\n'), null)
  const bad = loadConfigText('ledger: { type: sqlite, journal: { dir: /x, bogus: 1 } }\n', { registry: builtinPolicies() })
  assert.equal(bad.ok, false)
})

test('with fsyncInterval the journal still replays whole (the fdatasync runs off the request path)', async () => {
  const dir = freshDir()
  const a = Journal.open({ dir, maxBytes: 1 << 20, fsyncInterval: 5 })
  for (let i = 0; i < 50; i++) a.append('usage', rec(i))
  die(dir)
  const b = Journal.open({ dir, maxBytes: 1 << 20 })
  assert.equal((await replayAll(b)).length, 50)
  b.close()
})

test('a checkpoint ahead of every segment (one that landed after a clean stop) never makes new records look committed', async () => {
  // Checkpoints are written off the event loop: one from before a clean stop can land after the stop deleted
  // every segment. The next life numbers its segments past it, so a crash then loses nothing.
  const dir = freshDir()
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'ledger-0.checkpoint'), JSON.stringify({ seg: 5, off: 120 }))
  const a = Journal.open({ dir, maxBytes: 1 << 20 })
  a.append('usage', rec(1))
  a.append('usage', rec(2))
  assert.deepEqual(segmentFiles(dir), ['ledger-0-0000000006.journal'])
  die(dir)
  const b = Journal.open({ dir, maxBytes: 1 << 20 })
  assert.equal(b.replayPending, true)
  const got = await replayAll(b)
  assert.deepEqual(got.map((r) => (r.value as { requestId: string }).requestId), ['r-1', 'r-2'])
  b.close()
})

const fileBytes = (dir: string) => segmentFiles(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0)

test('held appends: one write per turn of the event loop, and whenWritten resolves once it is in the file', async () => {
  const dir = freshDir()
  const j = Journal.open({ dir, maxBytes: 1 << 20 })
  assert.equal(j.whenWritten(), null, 'nothing held, nothing to wait for')
  const positions = [0, 1, 2].map((i) => j.appendHeld('usage', rec(i)) as JournalPosition)
  const held = j.whenWritten()
  assert.ok(held instanceof Promise)
  assert.equal(j.whenWritten(), held, 'one promise for the whole turn')
  // Nothing written yet (a plain append, by contrast, is in the file when it returns: below).
  assert.equal(fileBytes(dir), 0)
  let bytesWhenResolved = -1
  await held!.then(() => { bytesWhenResolved = fileBytes(dir) })
  assert.equal(bytesWhenResolved, positions.at(-1)!.off, 'resolved once all three records were in the file')
  assert.equal(j.whenWritten(), null)
  const p3 = j.append('usage', rec(3)) as JournalPosition
  assert.equal(fileBytes(dir), p3.off, 'a plain append writes at once')
  die(dir)
  const b = Journal.open({ dir, maxBytes: 1 << 20 })
  assert.deepEqual((await replayAll(b)).map((r) => (r.value as { requestId: string }).requestId), ['r-0', 'r-1', 'r-2', 'r-3'])
  b.close()
})

test('held and plain appends in one turn keep the order of their offsets; a stop writes what is held', async () => {
  const dir = freshDir()
  const j = Journal.open({ dir, maxBytes: 1 << 20 })
  const p0 = j.appendHeld('usage', rec(0)) as JournalPosition
  const first = j.whenWritten()
  const p1 = j.append('usage', rec(1)) as JournalPosition // writes the held frame first, then its own
  assert.ok(p1.off > p0.off)
  assert.equal(fileBytes(dir), p1.off)
  await first // resolved by that write, not only at the turn's end
  j.appendHeld('messages', rec(2))
  const second = j.whenWritten()
  j.close() // before the turn ends: the held record is written
  await second
  assert.equal(j.whenWritten(), null)
  const b = Journal.open({ dir, maxBytes: 1 << 20 })
  assert.deepEqual((await replayAll(b)).map((r) => `${r.kind}:${(r.value as { requestId: string }).requestId}`), ['usage:r-0', 'usage:r-1', 'messages:r-2'])
  b.close()
})

test('held appends past a segment\'s size go on in a new segment, each record where its offset says', async () => {
  const dir = freshDir()
  const j = Journal.open({ dir, maxBytes: 1 << 22, segmentBytes: 64 * 1024 })
  const big = (i: number) => ({ requestId: `r-${i}`, text: 'y'.repeat(20_000) })
  const positions = Array.from({ length: 8 }, (_, i) => j.appendHeld('usage', big(i)) as JournalPosition)
  assert.ok(new Set(positions.map((p) => p.seg)).size >= 2, 'more than one segment')
  await j.whenWritten()
  die(dir)
  const b = Journal.open({ dir, maxBytes: 1 << 22, segmentBytes: 64 * 1024 })
  const got = await replayAll(b)
  assert.deepEqual(got.map((r) => (r.value as { requestId: string }).requestId), Array.from({ length: 8 }, (_, i) => `r-${i}`))
  assert.deepEqual(got.map((r) => r.pos), positions)
  b.close()
})
