/** Time source, injectable so tests can cross window boundaries without sleeping. */
export interface Clock {
  now(): number
}

export const systemClock: Clock = { now: () => Date.now() }

export class ManualClock implements Clock {
  constructor(private current = Date.parse('2026-01-01T00:00:00Z')) {}
  now(): number { return this.current }
  set(ms: number): void { this.current = ms }
  advance(ms: number): void { this.current += ms }
}
