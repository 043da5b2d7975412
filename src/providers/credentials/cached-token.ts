/** A bearer token and when it stops being valid (ms since the epoch). */
export interface ExpiringToken {
  readonly token: string
  readonly expiresAt: number
}

/**
 * One bearer token per backend, fetched once per lifetime: reused until `refreshMargin` before it
 * expires, refreshed by a single fetch however many requests arrive meanwhile (no thundering herd); a
 * failed refresh fails only the requests that needed a new token (the next request tries again).
 */
export class CachedToken {
  private current: { token: string; refreshAt: number } | null = null
  private inflight: Promise<string> | null = null

  constructor(
    private readonly fetchToken: () => Promise<ExpiringToken>,
    private readonly now: () => number = Date.now,
    private readonly refreshMargin = 5 * 60_000,
  ) {}

  async get(): Promise<string> {
    const t = this.current
    if (t !== null && this.now() < t.refreshAt) return t.token
    this.inflight ??= this.fetchToken().then(
      (fresh) => {
        const fetchedAt = this.now()
        // A token that lives shorter than twice the margin is kept for half its life instead.
        const margin = Math.min(this.refreshMargin, Math.max(0, (fresh.expiresAt - fetchedAt) / 2))
        this.current = { token: fresh.token, refreshAt: fresh.expiresAt - margin }
        this.inflight = null
        return fresh.token
      },
      (err: unknown) => {
        this.inflight = null
        throw err
      },
    )
    return this.inflight
  }

  /**
   * The backend refused `token`: forget it, so the next get() fetches afresh. Only that token is dropped, so
   * many requests refused with one stale token cause one refresh, not one each.
   */
  invalidate(token: string): void {
    if (this.current?.token === token) this.current = null
  }
}
