import type { KeyRecord, KeyStore } from '../keys.ts'

/** Keys held in process only (used when the ledger is disabled, and in tests). */
export class MemoryKeyStore implements KeyStore {
  private readonly byId = new Map<string, KeyRecord>()

  async add(r: KeyRecord): Promise<void> {
    for (const k of this.byId.values()) if (k.digest === r.digest) throw new Error('duplicate key digest')
    this.byId.set(r.id, r)
  }
  async list(consumerId?: string): Promise<KeyRecord[]> {
    return [...this.byId.values()].filter((k) => consumerId === undefined || k.consumerId === consumerId)
  }
  async revoke(id: string): Promise<boolean> {
    const k = this.byId.get(id)
    if (!k || k.revokedAt) return false
    this.byId.set(id, { ...k, revokedAt: new Date().toISOString() })
    return true
  }
  async revokeAt(id: string, at: string): Promise<boolean> {
    const k = this.byId.get(id)
    if (!k || k.revokedAt) return false
    this.byId.set(id, { ...k, revokedAt: at })
    return true
  }
  async removeConsumer(consumerId: string): Promise<number> {
    let n = 0
    for (const [id, k] of this.byId) if (k.consumerId === consumerId) { this.byId.delete(id); n++ }
    return n
  }
  async findByDigest(digest: string): Promise<KeyRecord | null> {
    for (const k of this.byId.values()) if (k.digest === digest) return k
    return null
  }
  async close(): Promise<void> {}
}
