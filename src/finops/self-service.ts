import { sha256Hex } from '../core/sha256.ts'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { GatewayError, GW_ERR } from '../core/errors.ts'
import type { Authenticator } from '../server/auth.ts'
import { presentedKey } from '../server/auth.ts'
import type { Runtime } from '../server/runtime.ts'
import type { KeyStore } from '../stores/keys.ts'
import type { UsageSource } from '../control/usage.ts'
import { limitsForKey } from '../policies/limits-common/admin-view.ts'
import { graceOf } from '../control/management/routes.ts'
import { publicKey, type ManagementService } from '../control/management/service.ts'
import type { ConsumerControl } from './types.ts'
import { budgetViews } from './budget-views.ts'

export interface SelfServiceDeps {
  readonly runtime: () => Runtime
  readonly auth: Authenticator
  readonly keyStore: KeyStore | null
  readonly consumers: ConsumerControl
  readonly service: ManagementService
  readonly ledger: UsageSource | null
  readonly now: () => number
}

const USAGE_DAYS = 30

/**
 * `GET /v1/sluice/me`: what a consumer key may know about itself (its consumer, limits, budgets, the last
 * 30 days of usage, whether it is suspended), and `POST /v1/sluice/me/rotate`: a new key for the same
 * consumer, the presented one retiring after a grace period (stored keys only: the file's are read-only).
 */
export function registerSelfService(app: FastifyInstance, deps: SelfServiceDeps): void {
  const whoami = async (req: FastifyRequest) => {
    const rt = deps.runtime()
    const p = deps.auth.resolve(rt.snapshot, req.headers)
    const principal = p instanceof Promise ? await p : p
    return { rt, principal }
  }

  app.get('/v1/sluice/me', async (req) => {
    const { rt, principal } = await whoami(req)
    const id = principal.consumerId
    const consumer = rt.snapshot.consumers.get(id)!
    const now = deps.now()
    const [budgets, limits, usage] = await Promise.all([
      budgetViews(rt, [consumer]),
      limitsForKey(rt, id),
      usageOf(deps.ledger, id, now),
    ])
    const s = deps.consumers.suspension(id, now)
    return {
      consumer: { id, product: principal.productId, metadata: principal.metadata },
      suspended: s === null ? null : { until: s.until === null ? null : new Date(s.until).toISOString(), reason: s.reason },
      key: await keyInfo(deps, req, rt),
      budgets: budgets.map(({ consumers: _c, ...b }) => b),
      limits,
      usage,
    }
  })

  app.post('/v1/sluice/me/rotate', async (req, reply) => {
    const { rt } = await whoami(req)
    const key = presentedKey(req.headers)!
    const digest = sha256Hex(key)
    if (rt.snapshot.keyDigests.has(digest)) throw new GatewayError(GW_ERR.CONFLICT, 'This key is defined in the configuration file and cannot be rotated at run time.')
    const record = deps.keyStore ? await deps.keyStore.findByDigest(digest) : null
    if (!record) throw new GatewayError(GW_ERR.INVALID_API_KEY, 'Incorrect API key provided.')
    const body = (req.body && typeof req.body === 'object' ? req.body : {}) as Record<string, unknown>
    const r = await deps.service.rotateKey(record, graceOf(body.grace), `consumer:${record.consumerId}`)
    return reply.code(201).send({ ...publicKey(r.record), key: r.key, oldKeyId: record.id, oldKeyExpiresAt: r.oldKeyExpiresAt })
  })
}

async function keyInfo(deps: SelfServiceDeps, req: FastifyRequest, rt: Runtime) {
  const digest = sha256Hex(presentedKey(req.headers)!)
  if (rt.snapshot.keyDigests.has(digest)) return { source: 'config' }
  const r = deps.keyStore ? await deps.keyStore.findByDigest(digest) : null
  return r ? { source: 'api', ...publicKey(r) } : null
}

async function usageOf(ledger: UsageSource | null, consumer: string, now: number) {
  if (!ledger) return null
  const since = now - USAGE_DAYS * 86_400_000
  try {
    const rows = await ledger.store.usage({ by: 'consumer', since })
    const row = rows.find((r) => r.key === consumer)
    return { since: new Date(since).toISOString(), requests: row?.requests ?? 0, promptTokens: row?.promptTokens ?? 0, completionTokens: row?.completionTokens ?? 0, totalTokens: row?.totalTokens ?? 0, costUsd: row?.costUsd ?? 0 }
  } catch {
    return null
  }
}
