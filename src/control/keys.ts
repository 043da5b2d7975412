import { randomBytes, randomUUID } from 'node:crypto'
import { sha256Hex } from '../core/sha256.ts'
import type { KeyRecord } from '../stores/keys.ts'

/** A new random consumer key and the record to store: the key itself is returned once and never stored. */
export function newKey(consumerId: string, label: string | null, now = new Date()): { key: string; record: KeyRecord } {
  const key = `sk-sluice-${randomBytes(24).toString('base64url')}`
  const record: KeyRecord = {
    id: `key_${randomUUID().replaceAll('-', '').slice(0, 16)}`,
    consumerId,
    digest: sha256Hex(key),
    prefix: key.slice(0, 14),
    label,
    createdAt: now.toISOString(),
    revokedAt: null,
  }
  return { key, record }
}
