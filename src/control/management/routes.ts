import type { FastifyInstance, FastifyRequest } from 'fastify'
import { GatewayError, GW_ERR } from '../../core/errors.ts'
import { parseDuration } from '../../core/duration.ts'
import type { Runtime } from '../../server/runtime.ts'
import type { KeyStore } from '../../stores/keys.ts'
import type { ManagementDirectory } from './directory.ts'
import { boundedActor, publicKey, type ManagementService } from './service.ts'
import { LIMITS } from './store.ts'

export interface ManagementRouteDeps {
  readonly runtime: () => Runtime
  readonly directory: ManagementDirectory
  readonly service: ManagementService
  readonly keyStore: KeyStore | null
  readonly now: () => number
}

const actorOf = (req: FastifyRequest) => boundedActor(req.headers['x-sluice-actor'])
const bodyOf = (req: FastifyRequest): Record<string, unknown> => {
  const b = req.body
  if (b === undefined || b === null) return {}
  if (typeof b !== 'object' || Array.isArray(b)) throw new GatewayError(GW_ERR.INVALID_REQUEST, 'The request body is a JSON object.')
  return b as Record<string, unknown>
}

/**
 * `/admin/consumers`, `/admin/products`, `/admin/keys` (CRUD), suspension, and `/admin/audit`. Answers show
 * where each item comes from (`config`: the file, read-only; `api`: created at run time).
 */
export function registerManagementRoutes(app: FastifyInstance, deps: ManagementRouteDeps): void {
  const { service, directory } = deps

  const consumerView = async (id: string) => {
    const snap = deps.runtime().snapshot
    const c = snap.consumers.get(id)
    if (!c) return null
    const managed = directory.current().consumers.find((m) => m.id === id)
    const suspension = directory.suspension(id, deps.now())
    const stored = deps.keyStore ? await deps.keyStore.list(id) : []
    const now = deps.now()
    return {
      id: c.id,
      product: c.product ?? null,
      metadata: c.metadata,
      source: managed ? 'api' : 'config',
      configKeys: c.keys.length,
      storedKeys: stored.filter((k) => k.revokedAt === null || Date.parse(k.revokedAt) > now).length,
      suspended: suspension === null ? null : { until: suspension.until === null ? null : new Date(suspension.until).toISOString(), reason: suspension.reason, by: suspension.by, at: new Date(suspension.at).toISOString() },
      createdAt: managed?.createdAt ?? null,
      updatedAt: managed?.updatedAt ?? null,
    }
  }

  app.get('/admin/consumers', async () => {
    const ids = [...deps.runtime().snapshot.consumers.keys()]
    return { consumers: (await Promise.all(ids.map(consumerView))).filter((v) => v !== null) }
  })
  app.get<{ Params: { id: string } }>('/admin/consumers/:id', async (req) => {
    const v = await consumerView(req.params.id)
    if (!v) throw new GatewayError(GW_ERR.NOT_FOUND, `No consumer "${req.params.id}".`)
    return v
  })
  app.post('/admin/consumers', async (req, reply) => {
    const c = await service.createConsumer(bodyOf(req), actorOf(req))
    return reply.code(201).send(await consumerView(c.id))
  })
  const update = async (req: FastifyRequest<{ Params: { id: string } }>) => {
    await service.updateConsumer(req.params.id, bodyOf(req), actorOf(req))
    return consumerView(req.params.id)
  }
  app.patch<{ Params: { id: string } }>('/admin/consumers/:id', update)
  app.put<{ Params: { id: string } }>('/admin/consumers/:id', update)
  app.delete<{ Params: { id: string } }>('/admin/consumers/:id', async (req) => {
    await service.deleteConsumer(req.params.id, actorOf(req))
    return { id: req.params.id, deleted: true }
  })
  app.post<{ Params: { id: string } }>('/admin/consumers/:id/suspend', async (req) => {
    await service.suspend(req.params.id, bodyOf(req), actorOf(req))
    return consumerView(req.params.id)
  })
  app.post<{ Params: { id: string } }>('/admin/consumers/:id/reinstate', async (req) => {
    const wasSuspended = await service.reinstate(req.params.id, actorOf(req))
    return { ...(await consumerView(req.params.id)), reinstated: wasSuspended }
  })

  const productView = (id: string) => {
    const p = deps.runtime().snapshot.products.get(id)
    if (!p) return null
    const managed = directory.current().products.find((m) => m.id === id)
    return { id: p.id, models: p.models ?? null, policies: p.policies, source: managed ? 'api' : 'config', createdAt: managed?.createdAt ?? null, updatedAt: managed?.updatedAt ?? null }
  }
  app.get('/admin/products', async () => ({ products: [...deps.runtime().snapshot.products.keys()].map(productView) }))
  app.get<{ Params: { id: string } }>('/admin/products/:id', async (req) => {
    const v = productView(req.params.id)
    if (!v) throw new GatewayError(GW_ERR.NOT_FOUND, `No product "${req.params.id}".`)
    return v
  })
  app.post('/admin/products', async (req, reply) => {
    const p = await service.createProduct(bodyOf(req), actorOf(req))
    return reply.code(201).send(productView(p.id))
  })
  const updateProduct = async (req: FastifyRequest<{ Params: { id: string } }>) => {
    await service.updateProduct(req.params.id, bodyOf(req), actorOf(req))
    return productView(req.params.id)
  }
  app.patch<{ Params: { id: string } }>('/admin/products/:id', updateProduct)
  app.put<{ Params: { id: string } }>('/admin/products/:id', updateProduct)
  app.delete<{ Params: { id: string } }>('/admin/products/:id', async (req) => {
    await service.deleteProduct(req.params.id, actorOf(req))
    return { id: req.params.id, deleted: true }
  })

  app.get<{ Querystring: { consumer?: string } }>('/admin/keys', async (req) => {
    if (!deps.keyStore) throw new GatewayError(GW_ERR.SERVICE_UNAVAILABLE, 'No key store is configured.')
    const keys = await deps.keyStore.list(typeof req.query.consumer === 'string' ? req.query.consumer : undefined)
    return { keys: keys.map(publicKey) }
  })
  app.post('/admin/keys', async (req, reply) => {
    const b = bodyOf(req)
    const { key, record } = await service.createKey(b.consumer, b.label, actorOf(req))
    return reply.code(201).send({ ...publicKey(record), key })
  })
  app.delete<{ Params: { id: string } }>('/admin/keys/:id', async (req) => {
    await service.revokeKey(req.params.id, actorOf(req))
    return { id: req.params.id, revoked: true }
  })
  app.post<{ Params: { id: string } }>('/admin/keys/:id/rotate', async (req) => {
    if (!deps.keyStore) throw new GatewayError(GW_ERR.SERVICE_UNAVAILABLE, 'No key store is configured.')
    const old = (await deps.keyStore.list()).find((k) => k.id === req.params.id)
    if (!old) throw new GatewayError(GW_ERR.NOT_FOUND, `No key "${req.params.id}".`)
    const grace = graceOf(bodyOf(req).grace)
    const r = await service.rotateKey(old, grace, actorOf(req))
    return { ...publicKey(r.record), key: r.key, oldKeyId: old.id, oldKeyExpiresAt: r.oldKeyExpiresAt }
  })

  app.get<{ Querystring: { limit?: string; target?: string; after?: string } }>('/admin/audit', async (req) => {
    const limit = req.query.limit === undefined ? 100 : Number(req.query.limit)
    if (!Number.isInteger(limit) || limit < 1 || limit > LIMITS.auditPage) throw new GatewayError(GW_ERR.INVALID_REQUEST, `"limit" is 1 to ${LIMITS.auditPage}.`, { param: 'limit' })
    const after = req.query.after === undefined ? undefined : Number(req.query.after)
    if (after !== undefined && !Number.isInteger(after)) throw new GatewayError(GW_ERR.INVALID_REQUEST, '"after" is an entry sequence number.', { param: 'after' })
    const target = typeof req.query.target === 'string' ? req.query.target.slice(0, 300) : undefined
    return { entries: await directory.store.audit({ limit, target, after }) }
  })
}

/** `"10m"`, `"30s"` or milliseconds; default one hour. */
export function graceOf(v: unknown): number {
  if (v === undefined || v === null) return 3_600_000
  if (typeof v === 'number') return v
  return (typeof v === 'string' ? parseDuration(v) : null) ?? NaN
}
