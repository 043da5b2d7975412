import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { BreakerStore, FailureInput } from '../../src/stores/breaker.ts'

const T0 = Date.parse('2026-01-01T00:00:00Z')
const rule = (now: number, over: Partial<FailureInput> = {}): FailureInput => ({ now, threshold: 3, windowMs: 10_000, tripMs: 30_000, reason: 'status 500', ...over })

/**
 * The behaviour every BreakerStore must have (memory and Redis run it). `make` returns a fresh store whose
 * keys do not collide with other runs; ids are unique per test as well.
 */
export function breakerStoreContract(name: string, make: () => Promise<{ store: BreakerStore; dispose?: () => Promise<void> }>, opts: { skip?: boolean } = {}): void {
  describe(`BreakerStore: ${name}`, { skip: opts.skip }, () => {
    const withStore = async (fn: (s: BreakerStore) => Promise<void>) => {
      const { store, dispose } = await make()
      try { await fn(store) } finally { await dispose?.() }
    }

    it('reads nothing for backends that never failed', () => withStore(async (s) => {
      const m = await s.read(['a', 'b'])
      assert.equal(m.size, 0)
    }))

    it('trips after `threshold` failures within the window, not before', () => withStore(async (s) => {
      assert.equal((await s.recordFailure('b1', rule(T0))).openUntil, 0)
      const second = await s.recordFailure('b1', rule(T0 + 1000))
      assert.equal(second.openUntil, 0)
      assert.equal(second.failures, 2)
      const third = await s.recordFailure('b1', rule(T0 + 2000))
      assert.equal(third.openUntil, T0 + 2000 + 30_000)
      assert.equal(third.trips, 1)
      assert.equal(third.lastReason, 'status 500')
      const read = (await s.read(['b1', 'other'])).get('b1')
      assert.equal(read?.openUntil, T0 + 32_000)
    }))

    it('forgets failures older than the window', () => withStore(async (s) => {
      await s.recordFailure('b2', rule(T0))
      await s.recordFailure('b2', rule(T0 + 1000))
      const r = await s.recordFailure('b2', rule(T0 + 10_500))
      assert.equal(r.openUntil, 0, 'the first failure left the window')
      assert.equal(r.failures, 2)
    }))

    it('extends an open circuit with a longer trip, never shortens it', () => withStore(async (s) => {
      await s.recordFailure('b3', rule(T0, { threshold: 1, tripMs: 5000 }))
      const longer = await s.recordFailure('b3', rule(T0 + 1000, { threshold: 1, tripMs: 20_000 }))
      assert.equal(longer.openUntil, T0 + 21_000)
      const shorter = await s.recordFailure('b3', rule(T0 + 2000, { threshold: 1, tripMs: 1000 }))
      assert.equal(shorter.openUntil, T0 + 21_000)
      assert.equal(shorter.trips, 1)
    }))

    it('lets one trial through a half-open circuit, and closes it on success', () => withStore(async (s) => {
      await s.recordFailure('b4', rule(T0, { threshold: 1, tripMs: 5000 }))
      assert.equal(await s.claimTrial('b4', T0 + 4999, 1000), false, 'still open')
      assert.equal(await s.claimTrial('b4', T0 + 5000, 1000), true)
      assert.equal(await s.claimTrial('b4', T0 + 5001, 1000), false, 'a trial is running')
      assert.equal(await s.claimTrial('b4', T0 + 6001, 1000), true, 'the lease expired')
      const closed = await s.close('b4', T0 + 6002)
      assert.equal(closed.openUntil, 0)
      assert.equal(closed.failures, 0)
      assert.equal(await s.claimTrial('b4', T0 + 6003, 1000), false, 'closed circuits need no trial')
      const r = await s.recordFailure('b4', rule(T0 + 7000, { threshold: 2 }))
      assert.equal(r.openUntil, 0, 'a closed circuit counts from zero again')
    }))

    it('re-trips a half-open circuit on failure', () => withStore(async (s) => {
      await s.recordFailure('b5', rule(T0, { threshold: 1, tripMs: 5000 }))
      assert.equal(await s.claimTrial('b5', T0 + 5000, 1000), true)
      const r = await s.recordFailure('b5', rule(T0 + 5100, { tripMs: 8000 }))
      assert.equal(r.openUntil, T0 + 13_100)
      assert.equal(r.trialUntil, 0)
      assert.equal(r.trips, 2)
    }))

    it('does not close a circuit that re-opened meanwhile', () => withStore(async (s) => {
      await s.recordFailure('b6', rule(T0, { threshold: 1, tripMs: 5000 }))
      await s.recordFailure('b6', rule(T0 + 6000, { tripMs: 5000 }))
      const r = await s.close('b6', T0 + 6001)
      assert.equal(r.openUntil, T0 + 11_000)
    }))

    it('keeps backends apart', () => withStore(async (s) => {
      await s.recordFailure('x1', rule(T0, { threshold: 1 }))
      const m = await s.read(['x1', 'x2'])
      assert.ok(m.get('x1')!.openUntil > 0)
      assert.equal(m.has('x2'), false)
    }))
  })
}
