/**
 * The stores a gateway process uses. Each has an in-process implementation (the embedded default) and a
 * distributed one on a real engine; both pass one shared contract suite under test/contract/.
 */
export interface Stores {
  readonly type: 'memory' | 'redis'
  /** True when the backing engine answers (for /readyz). */
  ping(): Promise<boolean>
  close(): Promise<void>
}
