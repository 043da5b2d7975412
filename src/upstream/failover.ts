import type { BackendConfig, ModelConfig } from '../config/schema.ts'
import type { RequestContext } from '../core/context.ts'
import { GatewayError, GW_ERR } from '../core/errors.ts'
import type { BreakerRecord } from '../stores/breaker.ts'
import type { AffinityTable } from './affinity.ts'
import { rendezvous } from './affinity.ts'
import { SCORED_STRATEGIES, type Balancer, type Member, type Scores } from './balancer.ts'
import { stateOf, type Breakers } from './breaker.ts'

/** A model's target as routing sees it: a pool, or a single backend as a pool of one. */
export interface Target {
  readonly balancer: Balancer
  readonly byId: ReadonlyMap<string, Member>
  readonly affinity: AffinityTable | null
}

/** Scores of a target's members for this request (least-latency, least-busy, least-cost). */
export type ScoreOf = (model: ModelConfig, target: Target) => Scores | Promise<Scores>

export interface Choice {
  readonly model: ModelConfig
  readonly backend: BackendConfig
  /** This try is the trial request of a half-open circuit: success closes it. */
  readonly trial: boolean
}

/**
 * The order one request tries members in: the model's target first (by strategy, affinity and circuit
 * state), then each of its `fallbacks` in turn. It never offers a member twice, nor one whose circuit is
 * open, nor a half-open one whose trial another request holds. Breaker records are read fresh from the
 * store once per model of the chain (one round trip) and updated from the store's own answers to failures.
 */
export class Plan {
  private index = 0
  private readonly records = new Map<string, Map<string, BreakerRecord>>()
  private readonly tried = new Set<string>()
  private lock: Promise<unknown> = Promise.resolve()
  // Made when first needed: most requests score nothing, have no affinity and meet no half-open trial, and
  // three empty maps made for every request were ~0.6 KB of its garbage.
  private scores: Map<string, Scores> | null = null
  private sessions: Map<Target, string | null> | null = null
  /** Members passed over because another request holds their half-open trial, until when at most. */
  private trialHeld: Map<string, number> | null = null

  constructor(
    private readonly ctx: RequestContext,
    private readonly chain: readonly ModelConfig[],
    private readonly targetOf: (m: ModelConfig) => Target,
    private readonly breakers: Breakers,
    private readonly scoreOf: ScoreOf | null = null,
  ) {}

  /** The next member to try, or null when the chain has no eligible member left. Calls are serialised. */
  next(): Promise<Choice | null> {
    const p = this.lock.then(() => this.advance())
    this.lock = p.catch(() => {})
    return p
  }

  /** The member may be offered again (a retry after its short retry-after, when nothing else is left). */
  retry(backendId: string): void {
    for (const key of this.tried) if (key.endsWith(`\0${backendId}`)) this.tried.delete(key)
    // Back to the model where the member was tried: the chain may have moved past it.
    const at = this.chain.findIndex((m) => this.targetOf(m).byId.has(backendId))
    if (at !== -1 && at < this.index) this.index = at
  }

  /** A failure changed a circuit: later choices (and the final answer) see the new record. */
  note(backendId: string, rec: BreakerRecord | null): void {
    if (!rec) return
    for (const m of this.records.values()) m.set(backendId, rec)
  }

  /**
   * When nothing was left to try: if every member of the whole chain is unavailable (circuit open or its
   * trial taken), the earliest moment one comes back; null when some member is merely failing.
   */
  comeback(): number | null {
    const now = this.breakers.now()
    let earliest = Infinity
    for (const model of this.chain) {
      const recs = this.records.get(model.name)
      if (!recs) return null // this part of the chain was never looked at (attempts ran out first)
      for (const m of this.targetOf(model).balancer.members) {
        const id = m.backend.id
        const rec = recs.get(id)
        const state = stateOf(rec, now)
        if (state === 'open') earliest = Math.min(earliest, rec!.openUntil)
        else if (state === 'half-open' && rec!.trialUntil > now) earliest = Math.min(earliest, rec!.trialUntil)
        else if (this.trialHeld?.has(id)) earliest = Math.min(earliest, this.trialHeld.get(id)!)
        else return null
      }
    }
    return Number.isFinite(earliest) ? earliest : null
  }

  private async advance(): Promise<Choice | null> {
    // A request only one backend can serve (it keeps the conversation's state): every other member is ineligible.
    const pinned = this.ctx.client?.backend
    while (this.index < this.chain.length) {
      const model = this.chain[this.index]!
      const target = this.targetOf(model)
      let recs = this.records.get(model.name)
      if (!recs) {
        recs = await this.breakers.read(target.balancer.members.map((m) => m.backend.id))
        this.records.set(model.name, recs)
      }
      const records = recs
      let scores = this.scores?.get(model.name)
      if (scores === undefined && this.scoreOf !== null && SCORED_STRATEGIES.has(target.balancer.strategy)) {
        ;(this.scores ??= new Map()).set(model.name, (scores = await this.scoreOf(model, target)))
      }
      for (;;) {
        const now = this.breakers.now()
        const eligible = (m: Member): boolean => {
          if (pinned !== undefined && m.backend.id !== pinned) return false
          if (this.tried.has(`${model.name}\0${m.backend.id}`)) return false
          const rec = records.get(m.backend.id)
          const state = stateOf(rec, now)
          return state === 'closed' || (state === 'half-open' && rec!.trialUntil <= now)
        }
        const m = this.choose(target, eligible, now, scores)
        if (!m) break
        this.tried.add(`${model.name}\0${m.backend.id}`)
        if (stateOf(records.get(m.backend.id), now) === 'half-open') {
          if (await this.breakers.claimTrial(m.backend.id)) return { model, backend: m.backend, trial: true }
          ;(this.trialHeld ??= new Map()).set(m.backend.id, now + 1000)
          continue
        }
        return { model, backend: m.backend, trial: false }
      }
      this.index++
    }
    return null
  }

  private choose(target: Target, eligible: (m: Member) => boolean, now: number, scores: Scores | undefined): Member | null {
    const aff = target.affinity
    if (aff) {
      let session = this.sessions?.get(target)
      if (session === undefined) (this.sessions ??= new Map()).set(target, (session = aff.sessionOf(this.ctx)))
      if (session !== null) {
        const sticky = aff.get(session, now)
        const m = sticky === undefined ? undefined : target.byId.get(sticky)
        if (m && eligible(m)) return m
        const placed = rendezvous(session, target.balancer.preferred(eligible))
        if (placed) aff.set(session, placed.backend.id, now)
        return placed
      }
    }
    return target.balancer.pick(eligible, scores)
  }
}

/** The 503 for "nothing healthy", with the moment the first member comes back as `retry-after`. */
export function noHealthyBackend(model: string, comeback: number | null, now: number): GatewayError {
  const waitMs = comeback === null ? 1000 : Math.max(1, comeback - now)
  return new GatewayError(GW_ERR.NO_HEALTHY_BACKEND, `No backend for the model "${model}" is available right now; retry later.`, {
    headers: { 'retry-after': String(Math.max(1, Math.ceil(waitMs / 1000))), 'retry-after-ms': String(Math.ceil(waitMs)) },
  })
}
