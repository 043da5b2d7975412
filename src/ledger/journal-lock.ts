import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { linkSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

/**
 * Which journal a process owns. Several gateway processes may share one journal directory; each takes a
 * slot (`ledger-<slot>.*` files) by creating its lock file atomically (a hard link fails if the name is
 * taken). A lock left by a process that no longer runs on this host is stale: its slot, and the journal
 * in it, are taken over (that is how a restarted process finds its own journal to replay).
 */
export const SLOT = /^[A-Za-z0-9_-]{1,32}$/
const MAX_SLOTS = 256

interface LockBody { pid: number; host: string; at: string; nonce?: string }

export interface SlotLock {
  readonly slot: string
  release(): void
}

export function lockPath(dir: string, slot: string): string {
  return join(dir, `ledger-${slot}.lock`)
}

/** Whether the lock's owner may still be running (another host's process cannot be checked: assume so). */
export function lockHeld(dir: string, slot: string): boolean {
  const body = readLock(lockPath(dir, slot))
  if (body === null) return false
  if (body.host !== hostname()) return true
  // A restarted container often gets the same pid: a lock with our pid from before this process started is
  // our own past life; one written since is another journal of this very process.
  if (body.pid === process.pid) return Date.parse(body.at) >= Date.now() - process.uptime() * 1000 - 1000
  return alive(body.pid)
}

/** Takes `slot` (or, without one, the lowest free numbered slot). Throws when the named slot is held. */
export function claimSlot(dir: string, slot?: string): SlotLock {
  const candidates = slot !== undefined ? [slot] : Array.from({ length: MAX_SLOTS }, (_, i) => String(i))
  for (const s of candidates) {
    if (!SLOT.test(s)) throw new Error(`journal slot "${s}" must be letters, digits, "_" or "-" (at most 32)`)
    const lock = tryLock(dir, s)
    if (lock) return lock
  }
  throw new Error(slot !== undefined ? `the ledger journal slot "${slot}" in ${dir} is held by a running process` : `no free ledger journal slot in ${dir}`)
}

function tryLock(dir: string, slot: string): SlotLock | null {
  const path = lockPath(dir, slot)
  const tmp = `${path}.${process.pid}.tmp`
  writeFileSync(tmp, JSON.stringify({ pid: process.pid, host: hostname(), at: new Date().toISOString(), nonce: randomBytes(6).toString('hex') } satisfies LockBody))
  try {
    for (let tries = 0; tries < 3; tries++) {
      try {
        linkSync(tmp, path)
        const mine = readFileSync(path, 'utf8')
        return { slot, release: () => { if (readQuiet(path) === mine) unlinkQuiet(path) } }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
      if (lockHeld(dir, slot)) return null
      // Stale: move it aside (only one of several racing processes can rename it), then link ours.
      const aside = `${path}.stale.${process.pid}`
      try { renameSync(path, aside) } catch { continue }
      const moved = readLock(aside)
      // Between our check and the rename another process may have taken the slot: then it is theirs, put it back.
      if (moved && moved.pid !== process.pid && moved.host === hostname() && alive(moved.pid)) {
        try { linkSync(aside, path) } catch { /* taken again meanwhile */ }
        unlinkQuiet(aside)
        return null
      }
      unlinkQuiet(aside)
    }
    return null
  } finally {
    unlinkQuiet(tmp)
  }
}

function readLock(path: string): LockBody | null {
  try {
    const body = JSON.parse(readFileSync(path, 'utf8')) as LockBody
    return typeof body.pid === 'number' ? body : null
  } catch (err) {
    // Unreadable or half-written: a lock nobody can prove is held.
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? null : { pid: -1, host: hostname(), at: '' }
  }
}

function readQuiet(path: string): string | null {
  try { return readFileSync(path, 'utf8') } catch { return null }
}

function alive(pid: number): boolean {
  if (pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function unlinkQuiet(path: string): void {
  try { unlinkSync(path) } catch { /* already gone */ }
}
