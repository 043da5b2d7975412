/**
 * Requests in flight per backend, for the `least-busy` pool strategy: in-process (memory), or shared by
 * every gateway process (Redis), so replicas see each other's load. A request that never ends (its
 * process died) stops counting after `maxAgeMs`.
 */
export interface InflightStore {
  /** Marks a request as in flight at a backend; fire-and-forget on the request path. */
  start(backendId: string, token: string, now: number): void
  /** The request ended (answered, failed or cancelled); fire-and-forget. */
  end(backendId: string, token: string): void
  /** Requests in flight per backend, counting entries younger than maxAgeMs only. */
  counts(backendIds: readonly string[], now: number): Promise<Map<string, number>>
}

/** Longest a request is counted as in flight without ending (a stream lasting longer is still rare). */
export const INFLIGHT_MAX_AGE_MS = 10 * 60_000

export class MemoryInflightStore implements InflightStore {
  private readonly byBackend = new Map<string, Map<string, number>>()

  constructor(private readonly maxAgeMs = INFLIGHT_MAX_AGE_MS) {}

  start(backendId: string, token: string, now: number): void {
    let m = this.byBackend.get(backendId)
    if (!m) this.byBackend.set(backendId, (m = new Map()))
    m.set(token, now)
  }

  end(backendId: string, token: string): void {
    this.byBackend.get(backendId)?.delete(token)
  }

  async counts(backendIds: readonly string[], now: number): Promise<Map<string, number>> {
    const out = new Map<string, number>()
    for (const id of backendIds) {
      const m = this.byBackend.get(id)
      let n = 0
      if (m) {
        for (const [token, at] of m) {
          if (now - at > this.maxAgeMs) m.delete(token)
          else n++
        }
      }
      out.set(id, n)
    }
    return out
  }
}
