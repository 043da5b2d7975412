/**
 * Decaying averages of how fast each backend answers, for the `least-latency` pool strategy: time to first
 * content for streams and time to the whole answer otherwise, each an exponentially weighted moving average
 * (recent answers count most). Kept per process across config reloads. A member not heard from for
 * `staleMs` counts as unknown again, so a member that was slow and recovered gets tried and noticed.
 */
export class LatencyStats {
  private readonly byBackend = new Map<string, { ttft: number | null; total: number | null; at: number }>()

  constructor(private readonly alpha = 0.5, private readonly staleMs = 60_000) {}

  observe(backendId: string, stream: boolean, ms: number, now: number): void {
    let s = this.byBackend.get(backendId)
    if (!s) this.byBackend.set(backendId, (s = { ttft: null, total: null, at: now }))
    const prev = stream ? s.ttft : s.total
    // An answer several times faster than the average means the member recovered (it was explored after a
    // slow spell): it starts afresh rather than working its way down sample by sample.
    const next = prev === null || ms < prev / 4 ? ms : prev + this.alpha * (ms - prev)
    if (stream) s.ttft = next
    else s.total = next
    s.at = now
  }

  /** The member's expected wait for this kind of request (ms), or null when unknown or stale. */
  estimate(backendId: string, stream: boolean, now: number): number | null {
    const s = this.byBackend.get(backendId)
    if (!s || now - s.at > this.staleMs) return null
    return (stream ? s.ttft ?? s.total : s.total ?? s.ttft) ?? null
  }
}
