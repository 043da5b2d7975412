const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/

/** Parses `250ms`, `10s`, `5m`, `1h`, `7d` into milliseconds; returns null when malformed. */
export function parseDuration(text: string): number | null {
  const m = DURATION.exec(text.trim())
  if (!m) return null
  return Math.round(Number(m[1]) * UNIT_MS[m[2]!]!)
}
