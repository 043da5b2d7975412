import { readlinkSync } from 'node:fs'
import { getPriority, setPriority } from 'node:os'

/**
 * Lowers the calling thread's CPU priority to `nice` (never raises it), for background threads that must
 * yield to the request path when both want the same core. On Linux setpriority(2) on a thread id affects
 * that thread alone, and `/proc/thread-self` names the caller's id; elsewhere (or when refused) it is a
 * no-op: the thread then just keeps its priority.
 */
export function lowerThreadPriority(nice: number): void {
  try {
    const link = readlinkSync('/proc/thread-self') // "<pid>/task/<tid>"
    const tid = Number(link.slice(link.lastIndexOf('/') + 1))
    if (Number.isInteger(tid) && tid > 0 && getPriority(tid) < nice) setPriority(tid, nice)
  } catch {
    // Not Linux, or not allowed: nothing to do.
  }
}
