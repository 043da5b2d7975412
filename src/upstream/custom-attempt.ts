import type { Pool } from 'undici'
import type { BackendConfig } from '../config/schema.ts'
import type { RequestContext } from '../core/context.ts'
import type { UpstreamResult } from '../core/pipeline.ts'
import type { Credentials } from '../providers/credentials/types.ts'
import type { UpstreamTarget } from '../providers/types.ts'

/** What the router settled for one try: the member, the provider's address for the operation, its pool and credentials. */
export interface AttemptTarget {
  readonly backend: BackendConfig
  readonly upstreamModel: string
  readonly target: UpstreamTarget
  readonly pool: Pool
  readonly credentials: Credentials | null
}

/**
 * A request whose body is not the hub's JSON (a multipart upload, a binary answer: src/media/) brings its
 * own way of sending one try; the router still chooses members, counts attempts, feeds breakers and fails over.
 */
export type CustomAttempt = (t: AttemptTarget, signal: AbortSignal) => Promise<{ result: UpstreamResult; text: string }>

const SLOT = Symbol('sluice.upstream.custom-attempt')

export function setCustomAttempt(ctx: RequestContext, attempt: CustomAttempt): void {
  ctx.slots.set(SLOT, attempt)
}

export function customAttemptOf(ctx: RequestContext): CustomAttempt | undefined {
  return ctx.slots.get(SLOT) as CustomAttempt | undefined
}
