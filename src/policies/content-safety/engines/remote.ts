import { z } from 'zod'
import { text } from '../../../config/schema-units.ts'
import type { EndpointResolver, ServiceEndpoint } from '../types.ts'

/** Options every remote engine shares: a `backends` entry, or its own endpoint and key. */
export const remoteTarget = {
  /** A `backends` entry: its url, auth (apiKey or managedIdentity) and headers are used. */
  backend: z.string().min(1).optional(),
  endpoint: z.string().url().optional(),
  apiKey: text().pipe(z.string().min(1)).optional(),
}

export const oneTarget = (e: { backend?: string; endpoint?: string }) => (e.backend === undefined) !== (e.endpoint === undefined)
export const ONE_TARGET_MESSAGE = 'a remote engine takes exactly one of backend or endpoint'

export function resolveTarget(e: { backend?: string; endpoint?: string; apiKey?: string }, resolve: EndpointResolver | undefined, engine: string): ServiceEndpoint {
  if (e.endpoint !== undefined) return { url: e.endpoint, headers: {}, apiKey: e.apiKey ?? null, managedIdentity: null }
  const found = resolve?.(e.backend!) ?? null
  if (found === null) throw new Error(`content-safety engine ${engine}: unknown backend "${e.backend}"`)
  return e.apiKey ? { ...found, apiKey: e.apiKey } : found
}

/** Runs `fn` over `items` with at most `limit` in flight; the first failure rejects. */
export async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i]!)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return out
}

/** POSTs JSON and returns the parsed answer; a non-2xx status is an outage of the engine. */
export async function postJson(url: string, headers: Record<string, string>, body: unknown, signal: AbortSignal): Promise<unknown> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body), signal })
  if (!res.ok) {
    await res.body?.cancel().catch(() => {})
    throw new Error(`answered ${res.status}`)
  }
  return res.json()
}
