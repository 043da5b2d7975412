import { readlinkSync } from 'node:fs'
import { getPriority, setPriority } from 'node:os'

/**
 * Lowers the calling thread's CPU priority to `nice` (never raises it), for background threads that must
 * yield to the request path when both want the same core. On Linux setpriority(2) on a thread id affects
 * that thread alone, and `/proc/thread-self` names the caller's id; elsewhere (or when refused) it is a
 * no-op. Returns the thread's nice value afterwards, or null when it could not be read.
 */
export function lowerThreadPriority(nice: number): number | null {
  let tid: number
  try {
    const link = readlinkSync('/proc/thread-self') // "<pid>/task/<tid>"
    tid = Number(link.slice(link.lastIndexOf('/') + 1))
    if (!Number.isInteger(tid) || tid <= 0) return null
  } catch {
    return null
  }
  try {
    if (getPriority(tid) < nice) setPriority(tid, nice)
    return getPriority(tid)
  } catch {
    return null
  }
}
