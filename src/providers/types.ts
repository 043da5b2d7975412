import type { Operation } from '../core/context.ts'
import type { BackendConfig } from '../config/schema.ts'

/** Where and how to send one operation to one backend. */
export interface UpstreamTarget {
  readonly origin: string
  readonly path: string
  readonly headers: Record<string, string>
}

/** A provider is data plus one pure function: no I/O, safe to call again on failover. */
export interface Provider {
  readonly type: BackendConfig['type']
  /** The API schema the provider speaks; every provider in this build speaks OpenAI's. */
  readonly speaks: 'openai'
  /** Which operations the provider serves. */
  readonly operations: ReadonlySet<Operation>
  target(backend: BackendConfig, operation: Operation, upstreamModel: string, baseUrl: string): UpstreamTarget
}

export const OPERATION_PATH: Record<Operation, string> = {
  'chat.completions': '/chat/completions',
  completions: '/completions',
  embeddings: '/embeddings',
  responses: '/responses',
}

/** Splits a base URL into origin and a path prefix without a trailing slash. */
export function splitBase(base: string): { origin: string; prefix: string } {
  const u = new URL(base)
  return { origin: u.origin, prefix: u.pathname.replace(/\/+$/, '') }
}
