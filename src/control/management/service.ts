import type { Logger } from 'pino'
import { GatewayError, GW_ERR } from '../../core/errors.ts'
import type { Runtime } from '../../server/runtime.ts'
import type { KeyRecord, KeyStore } from '../../stores/keys.ts'
import type { PolicyRegistry } from '../../policies/types.ts'
import { newKey } from '../keys.ts'
import type { ManagementDirectory } from './directory.ts'
import { validatePolicies } from './merge.ts'
import { LIMITS, type AuditEntry, type ManagedConsumer, type ManagedProduct } from './store.ts'

const ID = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/
/** Longest grace a rotated key may keep working. */
const MAX_GRACE_MS = 30 * 86_400_000

export interface ServiceDeps {
  readonly directory: ManagementDirectory
  readonly keys: KeyStore | null
  readonly runtime: () => Runtime
  readonly registry: PolicyRegistry
  readonly now: () => number
  readonly logger: Logger
  /** Forgets cached key lookups (after any key change, on every replica through the directory). */
  readonly invalidateKeys: () => void
}

const bad = (message: string, param: string | null = null) => new GatewayError(GW_ERR.INVALID_REQUEST, message, { param })
const conflict = (message: string) => new GatewayError(GW_ERR.CONFLICT, message)
const notFound = (message: string) => new GatewayError(GW_ERR.NOT_FOUND, message)

function checkId(v: unknown, what: string): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > LIMITS.idLength || !ID.test(v)) {
    throw bad(`Give the ${what} id as "id": 1 to ${LIMITS.idLength} letters, digits, ".", "_", ":" or "-", starting with a letter or digit.`, 'id')
  }
  return v
}

function checkMetadata(v: unknown): Record<string, string> {
  if (v === undefined || v === null) return {}
  if (typeof v !== 'object' || Array.isArray(v)) throw bad('"metadata" is an object of strings.', 'metadata')
  const entries = Object.entries(v as Record<string, unknown>)
  if (entries.length > LIMITS.metadataEntries) throw bad(`"metadata" holds at most ${LIMITS.metadataEntries} entries.`, 'metadata')
  const out: Record<string, string> = {}
  for (const [k, val] of entries) {
    if (k.length === 0 || k.length > LIMITS.idLength) throw bad(`metadata names are 1 to ${LIMITS.idLength} characters.`, 'metadata')
    if (typeof val !== 'string' || val.length > LIMITS.metadataValueLength) throw bad(`metadata values are strings of at most ${LIMITS.metadataValueLength} characters.`, 'metadata')
    out[k] = val
  }
  return out
}

export function boundedActor(v: unknown): string {
  return typeof v === 'string' && v.trim() !== '' ? v.trim().slice(0, LIMITS.actorLength).replace(/[^\x20-\x7e]/g, '?') : 'admin'
}

/**
 * Every run-time change to consumers, products, suspensions and keys: validated, written with its audit
 * entry, applied on this replica before the answer, announced to the others. The file's consumers and
 * products are read-only here (changing them means editing the file), except that they can be suspended.
 */
export class ManagementService {
  constructor(private readonly d: ServiceDeps) {}

  private audit(actor: string, action: string, target: string, before: unknown, after: unknown): AuditEntry {
    return { ts: new Date(this.d.now()).toISOString(), actor, action, target, before, after }
  }

  private fileConfig() {
    return this.d.runtime().snapshot
  }

  private managedConsumer(id: string): ManagedConsumer | undefined {
    return this.d.directory.current().consumers.find((c) => c.id === id)
  }

  private managedProduct(id: string): ManagedProduct | undefined {
    return this.d.directory.current().products.find((p) => p.id === id)
  }

  private fromFile(kind: 'consumer' | 'product', id: string): boolean {
    const snap = this.fileConfig()
    const managed = kind === 'consumer' ? this.managedConsumer(id) : this.managedProduct(id)
    return managed === undefined && (kind === 'consumer' ? snap.consumers.has(id) : snap.products.has(id))
  }

  private checkProductRef(v: unknown): string | null {
    if (v === undefined || v === null) return null
    if (typeof v !== 'string' || !this.fileConfig().products.has(v)) throw bad(`"product" names an existing product (or is null).`, 'product')
    return v
  }

  async createConsumer(body: Record<string, unknown>, actor: string): Promise<ManagedConsumer> {
    const id = checkId(body.id, 'consumer')
    if (this.fileConfig().consumers.has(id)) throw conflict(`A consumer "${id}" already exists${this.fromFile('consumer', id) ? ' in the configuration file (read-only at run time)' : ''}.`)
    const now = new Date(this.d.now()).toISOString()
    const c: ManagedConsumer = { id, product: this.checkProductRef(body.product), metadata: checkMetadata(body.metadata), createdAt: now, updatedAt: now }
    if (!(await this.d.directory.store.putConsumer(c, this.audit(actor, 'consumer.create', `consumer:${id}`, null, c), true))) throw conflict(`A consumer "${id}" already exists.`)
    await this.d.directory.changed()
    return c
  }

  async updateConsumer(id: string, body: Record<string, unknown>, actor: string): Promise<ManagedConsumer> {
    const before = this.requireManagedConsumer(id)
    const next: ManagedConsumer = {
      ...before,
      product: 'product' in body ? this.checkProductRef(body.product) : before.product,
      metadata: 'metadata' in body ? checkMetadata(body.metadata) : before.metadata,
      updatedAt: new Date(this.d.now()).toISOString(),
    }
    await this.d.directory.store.putConsumer(next, this.audit(actor, 'consumer.update', `consumer:${id}`, before, next), false)
    await this.d.directory.changed()
    return next
  }

  async deleteConsumer(id: string, actor: string): Promise<void> {
    const before = this.requireManagedConsumer(id)
    if (!(await this.d.directory.store.deleteConsumer(id, this.audit(actor, 'consumer.delete', `consumer:${id}`, before, null)))) throw notFound(`No run-time consumer "${id}".`)
    // Its keys go with it, so a consumer created later under the same id does not inherit them.
    await this.d.keys?.removeConsumer(id)
    this.d.invalidateKeys()
    await this.d.directory.changed()
  }

  private requireManagedConsumer(id: string): ManagedConsumer {
    const c = this.managedConsumer(id)
    if (c) return c
    if (this.fileConfig().consumers.has(id)) throw conflict(`The consumer "${id}" is defined in the configuration file and is read-only at run time; edit the file and reload.`)
    throw notFound(`No consumer "${id}".`)
  }

  async suspend(id: string, body: Record<string, unknown>, actor: string): Promise<void> {
    if (!this.fileConfig().consumers.has(id)) throw notFound(`No consumer "${id}".`)
    let until: number | null = null
    if (body.until !== undefined && body.until !== null) {
      until = typeof body.until === 'string' ? Date.parse(body.until) : NaN
      if (!Number.isFinite(until) || until <= this.d.now()) throw bad('"until" is a future ISO time (or absent: until reinstated).', 'until')
    }
    const reason = typeof body.reason === 'string' && body.reason.trim() ? body.reason.trim().slice(0, 500) : 'suspended by an admin'
    await this.d.directory.suspend({ consumerId: id, until, reason, by: `admin:${actor}`, at: this.d.now() }, actor)
  }

  async reinstate(id: string, actor: string): Promise<boolean> {
    if (!this.fileConfig().consumers.has(id)) throw notFound(`No consumer "${id}".`)
    const before = this.d.directory.current().suspensions.find((s) => s.consumerId === id) ?? null
    const gone = await this.d.directory.store.deleteSuspension(id, this.audit(actor, 'consumer.reinstate', `consumer:${id}`, before, null))
    await this.d.directory.changed()
    return gone
  }

  private checkProduct(body: Record<string, unknown>, base: { models: readonly string[] | null; policies: readonly Record<string, unknown>[] }): { models: string[] | null; policies: Record<string, unknown>[] } {
    let models = base.models === null ? null : [...base.models]
    if ('models' in body) {
      if (body.models === null) models = null
      else if (!Array.isArray(body.models) || body.models.some((m) => typeof m !== 'string' || !this.fileConfig().models.has(m))) throw bad('"models" lists known model names (or is null: all models).', 'models')
      else models = [...new Set(body.models as string[])]
    }
    let policies = [...base.policies]
    if ('policies' in body) {
      if (!Array.isArray(body.policies) || body.policies.length > LIMITS.policies || body.policies.some((p) => typeof p !== 'object' || p === null || Array.isArray(p))) {
        throw bad(`"policies" is a list of at most ${LIMITS.policies} policy entries, each { "<policy name>": { options } }.`, 'policies')
      }
      policies = body.policies as Record<string, unknown>[]
      if (validatePolicies(policies, this.d.registry) === null) {
        throw bad(`"policies" holds an unknown policy or invalid options; available: ${[...this.d.registry.keys()].join(', ')}.`, 'policies')
      }
      // Alerts name webhooks of the file's config: an unknown one would fail the runtime rebuild, so refuse it here.
      const hooks = new Set(this.fileConfig().config.webhooks.map((w) => w.id))
      for (const entry of policies) {
        for (const name of ['budget', 'token-limit']) {
          const alerts = (entry[name] as { alerts?: { webhook?: unknown }[] } | undefined)?.alerts
          const unknown = Array.isArray(alerts) ? alerts.find((a) => typeof a?.webhook === 'string' && !hooks.has(a.webhook)) : undefined
          if (unknown) throw bad(`"policies": the ${name} alert names webhook "${String(unknown.webhook)}", which is not in the configuration's webhooks.`, 'policies')
        }
      }
    }
    return { models, policies }
  }

  async createProduct(body: Record<string, unknown>, actor: string): Promise<ManagedProduct> {
    const id = checkId(body.id, 'product')
    if (this.fileConfig().products.has(id)) throw conflict(`A product "${id}" already exists${this.fromFile('product', id) ? ' in the configuration file (read-only at run time)' : ''}.`)
    const { models, policies } = this.checkProduct(body, { models: null, policies: [] })
    const now = new Date(this.d.now()).toISOString()
    const p: ManagedProduct = { id, models, policies: policies as ManagedProduct['policies'], createdAt: now, updatedAt: now }
    if (!(await this.d.directory.store.putProduct(p, this.audit(actor, 'product.create', `product:${id}`, null, p), true))) throw conflict(`A product "${id}" already exists.`)
    await this.d.directory.changed()
    return p
  }

  async updateProduct(id: string, body: Record<string, unknown>, actor: string): Promise<ManagedProduct> {
    const before = this.requireManagedProduct(id)
    const { models, policies } = this.checkProduct(body, before)
    const next: ManagedProduct = { ...before, models, policies: policies as ManagedProduct['policies'], updatedAt: new Date(this.d.now()).toISOString() }
    await this.d.directory.store.putProduct(next, this.audit(actor, 'product.update', `product:${id}`, before, next), false)
    await this.d.directory.changed()
    return next
  }

  async deleteProduct(id: string, actor: string): Promise<void> {
    const before = this.requireManagedProduct(id)
    const users = [...this.fileConfig().consumers.values()].filter((c) => c.product === id).map((c) => c.id)
    if (users.length) throw conflict(`The product "${id}" is used by ${users.length} consumer(s) (${users.slice(0, 5).join(', ')}); move them first.`)
    await this.d.directory.store.deleteProduct(id, this.audit(actor, 'product.delete', `product:${id}`, before, null))
    await this.d.directory.changed()
  }

  private requireManagedProduct(id: string): ManagedProduct {
    const p = this.managedProduct(id)
    if (p) return p
    if (this.fileConfig().products.has(id)) throw conflict(`The product "${id}" is defined in the configuration file and is read-only at run time; edit the file and reload.`)
    throw notFound(`No product "${id}".`)
  }

  private requireKeys(): KeyStore {
    if (!this.d.keys) throw new GatewayError(GW_ERR.SERVICE_UNAVAILABLE, 'No key store is configured.')
    return this.d.keys
  }

  async createKey(consumer: unknown, label: unknown, actor: string): Promise<{ key: string; record: KeyRecord }> {
    const store = this.requireKeys()
    if (typeof consumer !== 'string' || !this.fileConfig().consumers.has(consumer)) throw bad('Give an existing consumer id as "consumer".', 'consumer')
    if (label !== undefined && label !== null && (typeof label !== 'string' || label.length > 200)) throw bad('"label" is a string of at most 200 characters.', 'label')
    const made = newKey(consumer, typeof label === 'string' ? label : null, new Date(this.d.now()))
    await store.add(made.record)
    await this.d.directory.store.appendAudit(this.audit(actor, 'key.create', `key:${made.record.id}`, null, publicKey(made.record)))
    this.d.invalidateKeys()
    await this.d.directory.changed()
    return made
  }

  async revokeKey(id: string, actor: string): Promise<void> {
    const store = this.requireKeys()
    const before = (await store.list()).find((k) => k.id === id)
    // Revoked as of the gateway's clock, the one key lookups compare against.
    if (!(await store.revokeAt(id, new Date(this.d.now()).toISOString()))) throw notFound(`No active key "${id}".`)
    await this.d.directory.store.appendAudit(this.audit(actor, 'key.revoke', `key:${id}`, before ? publicKey(before) : null, { id, revoked: true }))
    this.d.invalidateKeys()
    await this.d.directory.changed()
  }

  /** A new key for the same consumer; the old one keeps working for `graceMs`, then stops. */
  async rotateKey(old: KeyRecord, graceMs: number, actor: string): Promise<{ key: string; record: KeyRecord; oldKeyExpiresAt: string }> {
    const store = this.requireKeys()
    if (!Number.isFinite(graceMs) || graceMs < 0 || graceMs > MAX_GRACE_MS) throw bad(`"grace" is between 0s and ${MAX_GRACE_MS / 86_400_000}d.`, 'grace')
    const at = new Date(this.d.now() + graceMs).toISOString()
    if (!(await store.revokeAt(old.id, at))) throw conflict('This key is already being retired; rotate with the newer key.')
    const made = newKey(old.consumerId, old.label, new Date(this.d.now()))
    await store.add(made.record)
    await this.d.directory.store.appendAudit(this.audit(actor, 'key.rotate', `key:${old.id}`, publicKey(old), { ...publicKey(old), revokedAt: at, replacedBy: made.record.id }))
    this.d.invalidateKeys()
    await this.d.directory.changed()
    return { ...made, oldKeyExpiresAt: at }
  }
}

export function publicKey(k: KeyRecord): Omit<KeyRecord, 'digest'> {
  const { digest: _d, ...rest } = k
  return rest
}
