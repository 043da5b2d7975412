import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify'
import type { Operation } from '../core/context.ts'
import { GatewayError, GW_ERR } from '../core/errors.ts'
import { refuseBeforeBody, sendError } from '../server/proxy.ts'
import { handleMedia, type MediaDeps, type MediaEndpoint } from './handler.ts'
import { tooLarge } from './upload.ts'

interface MediaRoute extends MediaEndpoint {
  /** The path under `/v1/`, `/openai/v1/` and (with `azure`) `/openai/deployments/{deployment}/`. */
  readonly suffix: string
  /** Whether Azure OpenAI serves it under a deployment path (moderations and rerank: no). */
  readonly azure: boolean
}

const ROUTES: readonly MediaRoute[] = [
  { operation: 'images.generations', suffix: 'images/generations', azure: true },
  { operation: 'images.edits', suffix: 'images/edits', azure: true, upload: { fileParts: ['image', 'image[]'] } },
  { operation: 'audio.transcriptions', suffix: 'audio/transcriptions', azure: true, upload: { fileParts: ['file'] } },
  { operation: 'audio.translations', suffix: 'audio/translations', azure: true, upload: { fileParts: ['file'] } },
  { operation: 'audio.speech', suffix: 'audio/speech', azure: true },
  { operation: 'moderations', suffix: 'moderations', azure: false },
  { operation: 'rerank', suffix: 'rerank', azure: false },
]

export interface MediaRouteDeps extends MediaDeps {
  /** The front door's admission hook for an operation (auth, in-flight slot, body budget), as the chat routes use. */
  readonly admit: (op: Operation) => onRequestHookHandler
}

/**
 * Registers the media endpoints in their own encapsulated scope: there a `multipart/form-data` body is
 * handed to the handler as the raw stream (never parsed by fastify, never buffered), while JSON bodies go
 * through the gateway's one JSON parser as everywhere else. A declared upload over `media.maxUploadBytes`
 * is refused (413) before a byte of it is read.
 */
export function registerMedia(app: FastifyInstance, deps: MediaRouteDeps): void {
  void app.register(async (scope) => {
    scope.addContentTypeParser('multipart/form-data', (_req, payload, done) => done(null, payload))
    const declaredLimit: onRequestHookHandler = (req, reply, done) => {
      const declared = Number(req.headers['content-length'] ?? 0)
      const max = deps.limits().maxUploadBytes
      if (declared > max) {
        req.sluice?.bodyDone()
        return refuseBeforeBody(deps, req, reply, opOf(req), tooLarge(max))
      }
      done()
    }
    const paths = new Set<string>()
    for (const r of ROUTES) {
      const hooks = r.upload ? [deps.admit(r.operation), declaredLimit] : [deps.admit(r.operation)]
      const config = { operation: r.operation }
      const handler = (fromPath: boolean) => (req: FastifyRequest, reply: FastifyReply) =>
        handleMedia(deps, req, reply, r, fromPath ? (req.params as { deployment?: string }).deployment ?? null : null)
      for (const prefix of ['/v1/', '/openai/v1/']) {
        scope.post(prefix + r.suffix, { onRequest: hooks, config }, handler(false))
        paths.add(prefix + r.suffix)
      }
      if (r.azure) {
        scope.post(`/openai/deployments/:deployment/${r.suffix}`, { onRequest: hooks, config }, handler(true))
        paths.add(`/openai/deployments/:deployment/${r.suffix}`)
      }
    }
    // These routes are registered after the gateway's own 405 pass ran, so they answer it themselves.
    for (const url of paths) {
      scope.route({
        method: ['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'],
        url,
        config: { public: true, methodNotAllowed: true },
        handler: (req, reply) => {
          void reply.header('allow', 'POST')
          sendError(reply, new GatewayError(GW_ERR.METHOD_NOT_ALLOWED, `${req.method} is not allowed here; use POST.`), null)
        },
      })
    }
  })
}

function opOf(req: FastifyRequest): Operation {
  return (req.routeOptions.config as { operation?: Operation }).operation ?? 'images.edits'
}
