/**
 * Counters for limits: reserve-then-settle over one or more windows of one counter key, atomically.
 *
 * Two kinds of window:
 * - `sliding`: an exact sliding log. Every reservation is an entry stamped with the time it was made; the
 *   window holds the entries of the last `windowMs`. A reservation fits when the entries still inside the
 *   window plus the new amount stay within `limit`, so no interval of `windowMs` ever admits more than
 *   `limit` (settling may later lower an entry to what was really used, or raise it: see `settle`).
 *   A reservation left behind by a crashed process simply leaves the window after `windowMs`.
 * - `fixed`: a calendar period `[start, end)` (quotas). Settled usage is committed; an open reservation is a
 *   lease that expires after `leaseMs`, so a crashed process cannot hold quota for the rest of the period.
 *
 * Time is always given by the caller (`now`), so fake clocks drive every implementation alike.
 */
export type CounterWindow =
  | { readonly kind: 'sliding'; readonly name: string; readonly limit: number; readonly windowMs: number }
  | { readonly kind: 'fixed'; readonly name: string; readonly limit: number; readonly start: number; readonly end: number }

export interface WindowState {
  readonly name: string
  readonly limit: number
  /** Counted in the window now, open reservations included. */
  readonly used: number
  readonly remaining: number
  /** When the window is back to full capacity: the newest entry leaves (sliding) or the period ends (fixed). */
  readonly resetAt: number
  /** Whether the amount asked for fits (always true for `peek`). */
  readonly fits: boolean
  /**
   * When it does not fit: milliseconds until it would (the oldest entries have left a sliding window, or
   * the period has ended); -1 when the amount is larger than the limit itself and can never fit.
   */
  readonly retryAfterMs: number
}

export interface ReserveRequest {
  /** The counter key (e.g. `tokens:team-a`); stores hash it, so any text is fine. */
  readonly key: string
  /** Unique per reservation; `settle` names it again. */
  readonly id: string
  readonly amount: number
  readonly windows: readonly CounterWindow[]
  readonly now: number
  /** How long a reservation in a fixed window holds before it expires by itself. */
  readonly leaseMs: number
}

export interface ReserveResult {
  /** True when the amount fit every window and was reserved in all of them; false reserves nothing. */
  readonly ok: boolean
  /** One state per window, in the order given (after the reservation when ok). */
  readonly windows: readonly WindowState[]
  /** Set when the distributed store was unreachable and a process-local fallback counter answered. */
  readonly local?: boolean
}

export interface SettleRequest {
  readonly key: string
  readonly id: string
  /** What `reserve` took. */
  readonly reserved: number
  /** What was really used; 0 releases the reservation. */
  readonly actual: number
  /** The same windows as at reserve time (a fixed window is identified by its start). */
  readonly windows: readonly CounterWindow[]
  readonly now: number
  /** Copy of `ReserveResult.local`: settle where the reservation was made. */
  readonly local?: boolean
}

export interface CounterStore {
  readonly kind: 'memory' | 'redis'
  /** Atomically reserves `amount` in every window, or in none when one of them would overflow. */
  reserve(req: ReserveRequest): Promise<ReserveResult>
  /**
   * Replaces a reservation by the actual amount. When a sliding entry already left its window (a request
   * longer than the window), only what exceeds the reservation is charged, at `now`; in a fixed window the
   * actual amount is committed whether or not the lease is still open.
   */
  settle(req: SettleRequest): Promise<void>
  /** The windows' current state, without reserving. */
  peek(key: string, windows: readonly CounterWindow[], now: number): Promise<WindowState[]>
  close(): Promise<void>
}
