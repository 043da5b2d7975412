import type { BackendConfig, PoolConfig } from '../config/schema.ts'

export interface Member {
  readonly backend: BackendConfig
  readonly priority: number
  readonly weight: number
  /** Position in the pool's member list. */
  readonly index: number
}

export type Eligible = (m: Member) => boolean

/** Lower is better; null = unknown (tried first, so a new or recovered member is measured). */
export type Scores = ReadonlyMap<string, number | null>

/** Strategies that choose by a per-request score of each member rather than by turn or weight alone. */
export const SCORED_STRATEGIES: ReadonlySet<string> = new Set(['least-latency', 'least-busy', 'least-cost'])

/**
 * Picks pool members by strategy, skipping those the caller says are unavailable (circuit open, already
 * tried by this request):
 * - `round-robin`: each member in turn;
 * - `weighted`: smooth weighted round-robin (nginx's), so shares are exact over any run of picks, not
 *   just on average, and no member gets bursts;
 * - `priority`: only the lowest priority number with an eligible member is used, its weights splitting
 *   the traffic (smooth weighted again); the next group takes over only when that whole group is out.
 * - `least-latency`, `least-busy`, `least-cost`: the member with the lowest score (expected wait, requests
 *   in flight, expected cost of this request), unknown scores first, ties split by weight; `least-latency`
 *   also explores a random member now and then (`explore`), so a member's recovery is noticed.
 * State (cursor, current weights) is per config snapshot; it needs no sharing between processes.
 */
export class Balancer {
  readonly members: readonly Member[]
  private cursor = 0
  private readonly current: number[]

  constructor(readonly strategy: PoolConfig['strategy'], members: readonly Member[], private readonly explore = 0, private readonly random: () => number = Math.random) {
    this.members = members
    this.current = members.map(() => 0)
  }

  /** The members a new choice would be made among: all eligible ones, or for `priority` the first group with any. */
  preferred(eligible: Eligible): Member[] {
    const ok = this.members.filter(eligible)
    if (this.strategy !== 'priority' || ok.length === 0) return ok
    const top = Math.min(...ok.map((m) => m.priority))
    return ok.filter((m) => m.priority === top)
  }

  pick(eligible: Eligible, scores?: Scores): Member | null {
    if (scores !== undefined && SCORED_STRATEGIES.has(this.strategy)) return this.lowest(this.members.filter(eligible), scores)
    const n = this.members.length
    if (this.strategy === 'round-robin') {
      for (let k = 0; k < n; k++) {
        const i = (this.cursor + k) % n
        const m = this.members[i]!
        if (eligible(m)) {
          this.cursor = (i + 1) % n
          return m
        }
      }
      return null
    }
    return this.smooth(this.preferred(eligible))
  }

  private lowest(ok: readonly Member[], scores: Scores): Member | null {
    if (ok.length <= 1) return ok[0] ?? null
    const unknown = ok.filter((m) => (scores.get(m.backend.id) ?? null) === null)
    if (unknown.length) return this.smooth(unknown)
    let best = Infinity
    for (const m of ok) best = Math.min(best, scores.get(m.backend.id)!)
    // Latencies within a fifth (and 5 ms) of the best are as good as the best: they share the traffic, so a
    // member that recovered takes its part again instead of losing to noise.
    const tie = this.strategy === 'least-latency' ? best * 1.2 + 5 : best
    const leaders = ok.filter((m) => scores.get(m.backend.id)! <= tie)
    // Exploration looks at the others: their averages only move when they are asked.
    if (this.explore > 0 && leaders.length < ok.length && this.random() < this.explore) {
      const others = ok.filter((m) => !leaders.includes(m))
      return others[Math.floor(this.random() * others.length)]!
    }
    return this.smooth(leaders)
  }

  private smooth(group: readonly Member[]): Member | null {
    if (group.length === 0) return null
    if (group.length === 1) return group[0]!
    let total = 0
    let best: Member | null = null
    for (const m of group) {
      total += m.weight
      this.current[m.index]! += m.weight
      if (best === null || this.current[m.index]! > this.current[best.index]!) best = m
    }
    this.current[best!.index]! -= total
    return best
  }
}
