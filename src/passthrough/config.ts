import { z } from 'zod'
import { byteSize } from '../config/schema-units.ts'

/**
 * The `passthrough:` section (contract section 6): every method and sub-path under `prefix` forwarded to one
 * backend, for a provider's native API. A prefix is plain path segments (no `.`/`..`, no encoded characters),
 * so it can never overlap another route by normalisation.
 */
const prefix = z.string()
  .regex(/^(\/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+$/, 'a prefix is one or more path segments: "/native/bedrock" (letters, digits, ".", "_", "~", "-")')
  .refine((p) => !p.split('/').some((s) => s === '.' || s === '..'), 'a prefix has no "." or ".." segment')

export const passthroughEntry = z.strictObject({
  prefix,
  backend: z.string().min(1),
  /** Largest request body forwarded (413 past it, checked on the declared length and while streaming). */
  maxRequestBytes: byteSize.default(10 * 1024 * 1024),
  /** Largest response body relayed (502 when declared larger; a stream past it is cut). */
  maxResponseBytes: byteSize.default(100 * 1024 * 1024),
  /** The model recorded in the ledger when the path names none this gateway knows (default: `passthrough:<prefix>`). */
  model: z.string().min(1).max(128).optional(),
})
export const passthroughSection = z.array(passthroughEntry).default([])
export type PassthroughRoute = z.infer<typeof passthroughEntry>

type Report = (path: (string | number)[], message: string) => void

/** Known prefixes of the gateway's own routes: a passthrough prefix may not shadow them. */
const RESERVED = ['/v1', '/openai', '/mcp', '/healthz', '/readyz', '/.well-known']

export function checkPassthroughReferences(routes: readonly PassthroughRoute[], backends: ReadonlySet<string>, report: Report): void {
  const seen = new Map<string, number>()
  routes.forEach((r, i) => {
    if (!backends.has(r.backend)) report(['passthrough', i, 'backend'], `unknown backend "${r.backend}"`)
    const p = r.prefix.toLowerCase()
    if (RESERVED.some((x) => p === x || p.startsWith(x + '/'))) report(['passthrough', i, 'prefix'], `"${r.prefix}" is under a route of the gateway itself (${RESERVED.join(', ')})`)
    for (const [other, j] of seen) {
      if (p === other || p.startsWith(other + '/') || other.startsWith(p + '/')) report(['passthrough', i, 'prefix'], `"${r.prefix}" overlaps passthrough[${j}]`)
    }
    seen.set(p, i)
  })
}
