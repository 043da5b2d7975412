export const QUOTA_PERIODS = ['hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const
export type QuotaPeriod = (typeof QUOTA_PERIODS)[number]

/**
 * The fixed calendar window, in UTC, that contains `now`: the hour, the day, the ISO week (starting
 * Monday 00:00), the month (from the 1st) or the year (from 1 January). Quotas reset at `end`.
 */
export function periodBounds(period: QuotaPeriod, now: number): { start: number; end: number } {
  const d = new Date(now)
  const y = d.getUTCFullYear()
  const m = d.getUTCMonth()
  const day = d.getUTCDate()
  switch (period) {
    case 'hourly': {
      const start = Date.UTC(y, m, day, d.getUTCHours())
      return { start, end: start + 3_600_000 }
    }
    case 'daily': {
      const start = Date.UTC(y, m, day)
      return { start, end: start + 86_400_000 }
    }
    case 'weekly': {
      const sinceMonday = (d.getUTCDay() + 6) % 7
      const start = Date.UTC(y, m, day - sinceMonday)
      return { start, end: start + 7 * 86_400_000 }
    }
    case 'monthly':
      return { start: Date.UTC(y, m, 1), end: Date.UTC(y, m + 1, 1) }
    case 'yearly':
      return { start: Date.UTC(y, 0, 1), end: Date.UTC(y + 1, 0, 1) }
  }
}
