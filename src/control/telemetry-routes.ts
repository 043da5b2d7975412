import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { parseDuration } from '../core/duration.ts'
import { GatewayError, GW_ERR } from '../core/errors.ts'
import type { Telemetry } from '../telemetry/telemetry.ts'

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
}

// The page talks only to this origin and loads nothing from elsewhere (no CDN); the admin token may sit in
// the URL fragment for a moment, so no referrer ever leaves.
const PAGE_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-cache',
}

const MAX_WINDOW_MS = 24 * 3_600_000

/**
 * Admin routes of telemetry: `/metrics` (Prometheus text), `/admin/metrics/summary` (the JSON the
 * dashboard polls) and the dashboard's static files under `/dashboard`.
 */
export function registerTelemetryRoutes(app: FastifyInstance, telemetry: Telemetry, metricsText?: () => Promise<{ contentType: string; text: string }>): void {
  app.get('/metrics', async (_req, reply) => {
    if (metricsText) {
      const m = await metricsText()
      return reply.header('content-type', m.contentType).send(m.text)
    }
    const text = await telemetry.prom.render()
    return reply.header('content-type', telemetry.prom.contentType).send(text)
  })

  app.get<{ Querystring: { window?: string } }>('/admin/metrics/summary', async (req) => {
    const given = req.query.window
    const windowMs = given === undefined ? 3_600_000 : parseDuration(given)
    if (windowMs === null || windowMs <= 0) {
      throw new GatewayError(GW_ERR.INVALID_REQUEST, '"window" is a duration such as 15m or 1h.', { param: 'window' })
    }
    return telemetry.summary(Math.min(windowMs, MAX_WINDOW_MS))
  })

  const files = loadDashboard()
  const send = (name: string) => async (_req: unknown, reply: import('fastify').FastifyReply) => {
    const f = files.get(name)
    if (!f) throw new GatewayError(GW_ERR.NOT_FOUND, 'The dashboard files are not installed with this build.')
    return reply.headers({ ...PAGE_HEADERS, 'content-type': f.type }).send(f.body)
  }
  app.get('/dashboard', { config: { public: true } }, send('index.html'))
  app.get('/dashboard/', { config: { public: true } }, send('index.html'))
  app.get<{ Params: { file: string } }>('/dashboard/:file', { config: { public: true } }, async (req, reply) => {
    if (!files.has(req.params.file)) throw new GatewayError(GW_ERR.NOT_FOUND, `No dashboard file "${req.params.file}".`)
    return send(req.params.file)(req, reply)
  })
}

/** Reads the dashboard's files once, at start: a fixed set by name, so a request can never name a path. */
function loadDashboard(): Map<string, { type: string; body: Buffer }> {
  const out = new Map<string, { type: string; body: Buffer }>()
  const dir = findDashboardDir()
  if (!dir) return out
  for (const name of readdirSync(dir)) {
    const type = CONTENT_TYPES[extname(name)]
    if (type && /^[a-z0-9][a-z0-9.-]*$/.test(name)) out.set(name, { type, body: readFileSync(join(dir, name)) })
  }
  return out
}

/** `dashboard/` at the package root, found from this module whether it runs from src/ or a build under dist/. */
function findDashboardDir(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'dashboard')
    if (existsSync(join(candidate, 'index.html'))) return candidate
    dir = dirname(dir)
  }
  return null
}
