import type { Suspension } from '../../finops/types.ts'
import type { AuditEntry, AuditQuery, ManagedConsumer, ManagedProduct, ManagedState, ManagementStore } from './store.ts'

/** In-process management state (with `ledger: { type: none }`, and in tests): one replica only. */
export class MemoryManagementStore implements ManagementStore {
  readonly kind = 'memory' as const
  private readonly consumers = new Map<string, ManagedConsumer>()
  private readonly products = new Map<string, ManagedProduct>()
  private readonly suspensions = new Map<string, Suspension>()
  private readonly log: AuditEntry[] = []
  private seq = 0

  async load(): Promise<ManagedState> {
    return { consumers: [...this.consumers.values()], products: [...this.products.values()], suspensions: [...this.suspensions.values()] }
  }
  async putConsumer(c: ManagedConsumer, audit: AuditEntry, expectNew: boolean): Promise<boolean> {
    if (expectNew && this.consumers.has(c.id)) return false
    this.consumers.set(c.id, c)
    this.push(audit)
    return true
  }
  async deleteConsumer(id: string, audit: AuditEntry): Promise<boolean> {
    if (!this.consumers.delete(id)) return false
    this.suspensions.delete(id)
    this.push(audit)
    return true
  }
  async putProduct(p: ManagedProduct, audit: AuditEntry, expectNew: boolean): Promise<boolean> {
    if (expectNew && this.products.has(p.id)) return false
    this.products.set(p.id, p)
    this.push(audit)
    return true
  }
  async deleteProduct(id: string, audit: AuditEntry): Promise<boolean> {
    if (!this.products.delete(id)) return false
    this.push(audit)
    return true
  }
  async putSuspension(s: Suspension, audit: AuditEntry): Promise<void> {
    this.suspensions.set(s.consumerId, s)
    this.push(audit)
  }
  async deleteSuspension(consumerId: string, audit: AuditEntry): Promise<boolean> {
    if (!this.suspensions.delete(consumerId)) return false
    this.push(audit)
    return true
  }
  async appendAudit(e: AuditEntry): Promise<void> {
    this.push(e)
  }
  async audit(q: AuditQuery): Promise<AuditEntry[]> {
    const rows = this.log.filter((e) => (q.target === undefined || e.target === q.target) && (q.after === undefined || e.seq! > q.after))
    return rows.slice(-(q.limit ?? 100)).reverse()
  }
  async close(): Promise<void> {}
  private push(e: AuditEntry): void {
    this.log.push({ ...e, seq: ++this.seq })
  }
}
