import type { PolicyEntry } from '../../config/schema.ts'
import type { Suspension } from '../../finops/types.ts'

/** A consumer created through the admin API (its keys live in the key store). */
export interface ManagedConsumer {
  readonly id: string
  readonly product: string | null
  readonly metadata: Readonly<Record<string, string>>
  readonly createdAt: string
  readonly updatedAt: string
}

export interface ManagedProduct {
  readonly id: string
  /** Models its consumers may call; null means all. */
  readonly models: readonly string[] | null
  readonly policies: readonly PolicyEntry[]
  readonly createdAt: string
  readonly updatedAt: string
}

/** One admin action: who, what, before and after, when. */
export interface AuditEntry {
  readonly seq?: number
  readonly ts: string
  readonly actor: string
  /** `consumer.create`, `consumer.update`, `consumer.delete`, `consumer.suspend`, `key.rotate`… */
  readonly action: string
  readonly target: string
  readonly before: unknown
  readonly after: unknown
}

export interface AuditQuery {
  readonly limit?: number
  readonly target?: string
  /** Only entries after this sequence number (for polling). */
  readonly after?: number
}

export interface ManagedState {
  readonly consumers: readonly ManagedConsumer[]
  readonly products: readonly ManagedProduct[]
  readonly suspensions: readonly Suspension[]
}

/**
 * Where run-time consumers, products, suspensions and the audit log are kept: the ledger's database
 * (SQLite file or PostgreSQL), or memory without one. Every write goes with its audit entry in one
 * transaction, so the log never misses an action that took effect.
 */
export interface ManagementStore {
  readonly kind: 'memory' | 'sqlite' | 'postgres'
  load(): Promise<ManagedState>
  /** Inserts or replaces; `expectNew` makes an existing id a conflict (returns false). */
  putConsumer(c: ManagedConsumer, audit: AuditEntry, expectNew: boolean): Promise<boolean>
  deleteConsumer(id: string, audit: AuditEntry): Promise<boolean>
  putProduct(p: ManagedProduct, audit: AuditEntry, expectNew: boolean): Promise<boolean>
  deleteProduct(id: string, audit: AuditEntry): Promise<boolean>
  putSuspension(s: Suspension, audit: AuditEntry): Promise<void>
  deleteSuspension(consumerId: string, audit: AuditEntry): Promise<boolean>
  appendAudit(e: AuditEntry): Promise<void>
  audit(q: AuditQuery): Promise<AuditEntry[]>
  close(): Promise<void>
}

/** Bounds on what the admin API stores (client-chosen strings are bounded wherever stored). */
export const LIMITS = { idLength: 128, metadataEntries: 32, metadataValueLength: 512, policies: 32, actorLength: 128, auditPage: 1000 } as const
