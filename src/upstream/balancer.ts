import type { BackendConfig, PoolConfig } from '../config/schema.ts'

export interface Member {
  readonly backend: BackendConfig
  readonly priority: number
  readonly weight: number
  /** Position in the pool's member list. */
  readonly index: number
}

export type Eligible = (m: Member) => boolean

/**
 * Picks pool members by strategy, skipping those the caller says are unavailable (circuit open, already
 * tried by this request):
 * - `round-robin`: each member in turn;
 * - `weighted`: smooth weighted round-robin (nginx's), so shares are exact over any run of picks, not
 *   just on average, and no member gets bursts;
 * - `priority`: only the lowest priority number with an eligible member is used, its weights splitting
 *   the traffic (smooth weighted again); the next group takes over only when that whole group is out.
 * State (cursor, current weights) is per config snapshot; it needs no sharing between processes.
 */
export class Balancer {
  readonly members: readonly Member[]
  private cursor = 0
  private readonly current: number[]

  constructor(readonly strategy: PoolConfig['strategy'], members: readonly Member[]) {
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

  pick(eligible: Eligible): Member | null {
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
