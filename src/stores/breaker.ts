/**
 * Circuit-breaker state per backend, shared by every Router built from successive config snapshots and,
 * with the Redis store, by every gateway process. Times are epoch milliseconds from the gateway's clock
 * (passed in, never read by the store) so tests can drive them with a fake clock.
 */
export interface BreakerRecord {
  /** The circuit is open until this moment; 0 = closed. Once passed (and not 0) the circuit is half-open. */
  readonly openUntil: number
  /** A half-open circuit lets one trial request through; its lease ends here (0 = no trial running). */
  readonly trialUntil: number
  /** Failures counted in the current window (closed circuits only). */
  readonly failures: number
  /** How many times the circuit has tripped since the record was created. */
  readonly trips: number
  readonly lastFailureAt: number
  /** Short reason of the last failure (`status 429`, `connect`, `timeout`…); never a URL or key. */
  readonly lastReason: string | null
}

export const CLOSED_RECORD: BreakerRecord = Object.freeze({ openUntil: 0, trialUntil: 0, failures: 0, trips: 0, lastFailureAt: 0, lastReason: null })

export interface FailureInput {
  readonly now: number
  /** Failures within `windowMs` that trip a closed circuit. */
  readonly threshold: number
  readonly windowMs: number
  /** How long the circuit stays open if this failure trips (or re-trips) it. */
  readonly tripMs: number
  readonly reason: string
}

export interface BreakerStore {
  /** The records of these backends in one round trip; a backend with no record is absent (closed). */
  read(ids: readonly string[]): Promise<Map<string, BreakerRecord>>
  /**
   * Counts one failure, atomically. A closed circuit trips when `threshold` failures fall within the window.
   * An open circuit is extended to `now + tripMs` when that is later (a longer Retry-After extends a trip,
   * a shorter one never shortens it); a half-open circuit trips again.
   */
  recordFailure(id: string, input: FailureInput): Promise<BreakerRecord>
  /** Claims the single trial request of a half-open circuit; false when it is not half-open or a trial is running. */
  claimTrial(id: string, now: number, leaseMs: number): Promise<boolean>
  /** Closes a half-open circuit after a successful trial; leaves a circuit that re-opened meanwhile alone. */
  close(id: string, now: number): Promise<BreakerRecord>
}
