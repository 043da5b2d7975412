import { parseDuration } from '../core/duration.ts'
import { USAGE_GROUPS, type UsageGroup, type UsageQuery, type UsageRow } from '../stores/ledger.ts'

export const USAGE_FORMATS = ['json', 'csv', 'table'] as const
export type UsageFormat = (typeof USAGE_FORMATS)[number]

/** The report's columns, in the contract's order (JSON keys and CSV header alike). */
export const USAGE_COLUMNS = ['key', 'requests', 'promptTokens', 'completionTokens', 'totalTokens', 'costUsd', 'cacheHits', 'errors', 'savedUsd'] as const

export class UsageParamError extends Error {
  constructor(readonly param: string, message: string) { super(message) }
}

/**
 * A time bound: an ISO date or date-time (`2026-03-01`, `2026-03-01T10:00:00Z`), epoch milliseconds, or a
 * duration back from now (`24h`, `7d`, `30m`).
 */
export function parseTimeBound(text: string, now: number, param: string): number {
  const t = text.trim()
  const rel = parseDuration(t)
  if (rel !== null) return now - rel
  if (/^\d{10,}$/.test(t)) return Number(t)
  const ms = Date.parse(t)
  if (Number.isNaN(ms)) throw new UsageParamError(param, `"${text}" is not a time: use an ISO date (2026-03-01, 2026-03-01T10:00:00Z) or a duration back from now (24h, 7d).`)
  return ms
}

export function parseUsageQuery(q: { by?: string; since?: string; until?: string }, now: number): UsageQuery {
  const by = (q.by ?? 'consumer') as UsageGroup
  if (!USAGE_GROUPS.includes(by)) throw new UsageParamError('by', `"by" is one of ${USAGE_GROUPS.join(', ')}.`)
  const since = q.since ? parseTimeBound(q.since, now, 'since') : null
  const until = q.until ? parseTimeBound(q.until, now, 'until') : null
  if (since !== null && until !== null && since >= until) throw new UsageParamError('since', '"since" must be before "until".')
  return { by, since, until }
}

function csvCell(v: string | number): string {
  if (typeof v === 'number') return String(v)
  // Quote what needs it, and defuse spreadsheet formulas in keys (model names come from configs).
  const s = /^[=+@\t\r]/.test(v) ? `'${v}` : v
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
}

export function usageCsv(rows: readonly UsageRow[]): string {
  const lines = [USAGE_COLUMNS.join(',')]
  for (const r of rows) lines.push(USAGE_COLUMNS.map((c) => csvCell(r[c])).join(','))
  return lines.join('\n') + '\n'
}

/** A fixed-width table with a total line, for the terminal. */
export function usageTable(rows: readonly UsageRow[], by: UsageGroup): string {
  const head = [by.toUpperCase(), 'REQUESTS', 'PROMPT', 'COMPLETION', 'TOTAL', 'COST_USD', 'CACHE_HITS', 'ERRORS', 'SAVED_USD']
  const line = (r: UsageRow) => [r.key, String(r.requests), String(r.promptTokens), String(r.completionTokens), String(r.totalTokens), r.costUsd.toFixed(6), String(r.cacheHits), String(r.errors), r.savedUsd.toFixed(6)]
  const sum = (k: 'requests' | 'promptTokens' | 'completionTokens' | 'totalTokens' | 'costUsd' | 'cacheHits' | 'errors' | 'savedUsd') => rows.reduce((a, r) => a + r[k], 0)
  const total: UsageRow = { key: 'TOTAL', requests: sum('requests'), promptTokens: sum('promptTokens'), completionTokens: sum('completionTokens'), totalTokens: sum('totalTokens'), costUsd: sum('costUsd'), cacheHits: sum('cacheHits'), errors: sum('errors'), savedUsd: sum('savedUsd') }
  const body = rows.map(line)
  const table = [head, ...body, line(total)]
  const widths = head.map((_, i) => Math.max(...table.map((row) => row[i]!.length)))
  const fmt = (row: string[]) => row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ').trimEnd()
  const rule = widths.map((w) => '-'.repeat(w)).join('  ')
  return [fmt(head), rule, ...body.map(fmt), rule, fmt(line(total))].join('\n') + '\n'
}
