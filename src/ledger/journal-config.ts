import { createHash } from 'node:crypto'
import { dirname, join } from 'node:path'
import type { LedgerConfig } from '../config/schema.ts'

/** Defaults of `ledger.journal`. */
export const DEFAULT_JOURNAL_MAX_BYTES = 256 * 1024 * 1024
export const DEFAULT_SEGMENT_BYTES = 8 * 1024 * 1024

export interface JournalSettings {
  readonly dir: string
  readonly maxBytes: number
  readonly segmentBytes: number
  readonly fsyncInterval: number
}

/**
 * The journal a ledger config asks for, or null (`journal: false`, no ledger, or an in-memory SQLite
 * ledger, which a restart loses anyway). The directory defaults to `journal/` beside the SQLite file.
 */
export function journalSettingsOf(config: LedgerConfig): JournalSettings | null {
  if (config.type === 'none' || config.journal === false) return null
  if (config.type === 'sqlite' && config.path === ':memory:' && !config.journal?.dir) return null
  const j = config.journal ?? {}
  const dir = j.dir ?? (config.type === 'sqlite' ? join(dirname(config.path), 'journal') : join('.sluice', 'journal', postgresStoreName(config.url, config.tablePrefix)))
  return { dir, maxBytes: j.maxBytes ?? DEFAULT_JOURNAL_MAX_BYTES, segmentBytes: j.segmentBytes ?? DEFAULT_SEGMENT_BYTES, fsyncInterval: j.fsyncInterval ?? 0 }
}

/**
 * A PostgreSQL ledger's default journal lives in a directory named after the store it feeds (server,
 * database and table prefix; never the password), so records written for one store are never replayed
 * into another that a later configuration (or another gateway in the same working directory) names.
 */
function postgresStoreName(url: string, tablePrefix: string | undefined): string {
  let target = url
  try {
    const u = new URL(url)
    target = `${u.hostname}:${u.port}${u.pathname}`
  } catch { /* not a URL (a connection string): hash it as it is */ }
  return 'pg-' + createHash('sha256').update(`${target}\0${tablePrefix ?? ''}`).digest('hex').slice(0, 16)
}

/**
 * The journal slot of this process: `SLUICE_WORKER_ID` when a launcher numbers its worker processes (a
 * restarted worker then finds its own journal), otherwise the lowest free slot in the directory.
 */
export function journalSlotOf(env: Readonly<Record<string, string | undefined>>): string | undefined {
  const id = env.SLUICE_WORKER_ID?.trim()
  return id ? id : undefined
}
