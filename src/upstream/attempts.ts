import type { RequestContext } from '../core/context.ts'

/** One upstream try made for a request: failovers and hedges each add one. */
export interface AttemptRecord {
  readonly backendId: string
  /** The public model the try was for (a fallback's name when the chain moved on). */
  readonly model: string
  outcome: 'pending' | 'answered' | 'failed' | 'cancelled'
  /** Upstream HTTP status when one came back. */
  status: number | null
  /** Error code (GW_ERR) of a failed try. */
  error: string | null
  /**
   * Tokens a try that did not answer the client still cost: a cancelled hedge had the prompt processed
   * (estimated) and may have produced content before it was cancelled (counted). Null for the answering
   * try (its usage is the request's) and for refused tries (429/5xx are not billed by providers).
   */
  promptTokens: number | null
  completionTokens: number | null
}

/** Where the router keeps a request's attempts; read with `attemptsOf` (e.g. by a ledger's complete hook). */
export const ATTEMPTS_SLOT = Symbol('sluice.upstream.attempts')

export function attemptsOf(ctx: RequestContext): readonly AttemptRecord[] {
  return (ctx.slots.get(ATTEMPTS_SLOT) as AttemptRecord[] | undefined) ?? []
}

export function addAttempt(ctx: RequestContext, backendId: string, model: string): AttemptRecord {
  let list = ctx.slots.get(ATTEMPTS_SLOT) as AttemptRecord[] | undefined
  if (!list) ctx.slots.set(ATTEMPTS_SLOT, (list = []))
  const rec: AttemptRecord = { backendId, model, outcome: 'pending', status: null, error: null, promptTokens: null, completionTokens: null }
  list.push(rec)
  return rec
}
