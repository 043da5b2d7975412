import { createHash, randomBytes, randomUUID } from 'node:crypto'
import type { KeyRecord } from '../stores/keys.ts'

/** A new random consumer key and the record to store: the key itself is returned once and never stored. */
export function newKey(consumerId: string, label: string | null, now = new Date()): { key: string; record: KeyRecord } {
  const key = `sk-sluice-${randomBytes(24).toString('base64url')}`
  const record: KeyRecord = {
    id: `key_${randomUUID().replaceAll('-', '').slice(0, 16)}`,
    consumerId,
    digest: createHash('sha256').update(key).digest('hex'),
    prefix: key.slice(0, 14),
    label,
    createdAt: now.toISOString(),
    revokedAt: null,
  }
  return { key, record }
}
