/** A consumer key created at run time (`sluice keys create`); only its SHA-256 digest is ever stored. */
export interface KeyRecord {
  readonly id: string
  readonly consumerId: string
  /** sha256 hex of the key. */
  readonly digest: string
  /** The first characters of the key, to recognise it in listings (never enough to use it). */
  readonly prefix: string
  readonly label: string | null
  readonly createdAt: string
  /** When the key stopped (or, after a rotation, will stop) working. */
  readonly revokedAt: string | null
}

export interface KeyStore {
  add(record: KeyRecord): Promise<void>
  list(consumerId?: string): Promise<KeyRecord[]>
  /** Returns false when no such key exists or it was already revoked. */
  revoke(id: string): Promise<boolean>
  /**
   * Schedules an active key's revocation at `at` (ISO time, e.g. the end of a rotation's grace period):
   * it keeps working until then. Returns false when no such active key exists.
   */
  revokeAt(id: string, at: string): Promise<boolean>
  /** Deletes every key of a consumer (the consumer is deleted); returns how many. */
  removeConsumer(consumerId: string): Promise<number>
  findByDigest(digest: string): Promise<KeyRecord | null>
  close(): Promise<void>
}
