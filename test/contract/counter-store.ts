import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import type { CounterStore, CounterWindow } from '../../src/stores/counter.ts'
import { LOG_BUCKETS, LOG_CAP } from '../../src/stores/memory/counter.ts'

const T0 = Date.parse('2026-01-01T00:00:00Z')
const MIN = 60_000
const tpm = (limit: number): CounterWindow => ({ kind: 'sliding', name: 'tpm', limit, windowMs: MIN })
const month = (limit: number, start = T0, end = Date.parse('2026-02-01T00:00:00Z')): CounterWindow => ({ kind: 'fixed', name: 'quota', limit, start, end })

/**
 * The behaviour every CounterStore must have (memory and Redis run it). Keys are unique per test, so runs
 * sharing one Redis never collide.
 */
export function counterStoreContract(name: string, make: () => Promise<{ store: CounterStore; dispose?: () => Promise<void> }>, opts: { skip?: boolean; logLength?: (s: CounterStore, key: string, w: CounterWindow & { kind: 'sliding' }) => Promise<number> } = {}): void {
  describe(`CounterStore: ${name}`, { skip: opts.skip }, () => {
    const withStore = async (fn: (s: CounterStore, key: string) => Promise<void>) => {
      const { store, dispose } = await make()
      try { await fn(store, `tokens:${randomUUID()}`) } finally { await dispose?.() }
    }
    const reserve = (s: CounterStore, key: string, amount: number, windows: CounterWindow[], now: number, id: string = randomUUID(), leaseMs = 600_000) =>
      s.reserve({ key, id, amount, windows, now, leaseMs })

    it('refuses a reservation over the limit, and a refusal reserves nothing', () => withStore(async (s, k) => {
      const first = await reserve(s, k, 80, [tpm(100)], T0)
      assert.equal(first.ok, true)
      assert.equal(first.windows[0]!.used, 80)
      assert.equal(first.windows[0]!.remaining, 20)
      const second = await reserve(s, k, 30, [tpm(100)], T0 + 1)
      assert.equal(second.ok, false)
      assert.equal(second.windows[0]!.fits, false)
      assert.equal(second.windows[0]!.used, 80)
      assert.equal((await reserve(s, k, 20, [tpm(100)], T0 + 2)).ok, true)
    }))

    it('computes the exact wait until enough old entries leave the sliding window', () => withStore(async (s, k) => {
      await reserve(s, k, 60, [tpm(100)], T0)
      await reserve(s, k, 30, [tpm(100)], T0 + 10_000)
      const refused = await reserve(s, k, 50, [tpm(100)], T0 + 20_000)
      assert.equal(refused.ok, false)
      // 40 must free up: the 60 reserved at T0 leaves at T0 + 60 s, 40 s from now.
      assert.equal(refused.windows[0]!.retryAfterMs, 40_000)
      assert.equal((await reserve(s, k, 50, [tpm(100)], T0 + 59_999)).ok, false)
      const later = await reserve(s, k, 50, [tpm(100)], T0 + 60_000)
      assert.equal(later.ok, true)
      assert.equal(later.windows[0]!.used, 80)
      const refused2 = await reserve(s, k, 30, [tpm(100)], T0 + 61_000)
      // 10 must free up: the 30 from T0 + 10 s leaves at T0 + 70 s.
      assert.equal(refused2.windows[0]!.retryAfterMs, 9_000)
    }))

    it('never fits an amount larger than the limit (retryAfterMs -1)', () => withStore(async (s, k) => {
      const r = await reserve(s, k, 101, [tpm(100)], T0)
      assert.equal(r.ok, false)
      assert.equal(r.windows[0]!.retryAfterMs, -1)
      const q = await reserve(s, k, 101, [month(100)], T0)
      assert.equal(q.windows[0]!.retryAfterMs, -1)
    }))

    it('reports resetAt when the newest entry leaves the window', () => withStore(async (s, k) => {
      await reserve(s, k, 10, [tpm(100)], T0)
      const r = await reserve(s, k, 10, [tpm(100)], T0 + 5_000)
      assert.equal(r.windows[0]!.resetAt, T0 + 65_000)
      const [idle] = await s.peek(k, [tpm(100)], T0 + 70_000)
      assert.equal(idle!.used, 0)
      assert.equal(idle!.resetAt, T0 + 70_000)
    }))

    it('settles to the actual amount: refund, extra charge, release', () => withStore(async (s, k) => {
      const w = [tpm(100)]
      await reserve(s, k, 80, w, T0, 'r1')
      await s.settle({ key: k, id: 'r1', reserved: 80, actual: 20, windows: w, now: T0 + 1000 })
      assert.equal((await s.peek(k, w, T0 + 1000))[0]!.used, 20)
      await reserve(s, k, 10, w, T0 + 2000, 'r2')
      await s.settle({ key: k, id: 'r2', reserved: 10, actual: 50, windows: w, now: T0 + 3000 })
      assert.equal((await s.peek(k, w, T0 + 3000))[0]!.used, 70)
      await reserve(s, k, 30, w, T0 + 4000, 'r3')
      await s.settle({ key: k, id: 'r3', reserved: 30, actual: 0, windows: w, now: T0 + 5000 })
      assert.equal((await s.peek(k, w, T0 + 5000))[0]!.used, 70)
      // The settled amounts keep their original time: r1 (20) leaves at T0 + 60 s.
      assert.equal((await s.peek(k, w, T0 + 60_000))[0]!.used, 50)
    }))

    it('charges only the excess, at settle time, when the entry already left the window', () => withStore(async (s, k) => {
      const w = [tpm(100)]
      await reserve(s, k, 10, w, T0, 'long')
      await s.settle({ key: k, id: 'long', reserved: 10, actual: 30, windows: w, now: T0 + 70_000 })
      assert.equal((await s.peek(k, w, T0 + 70_000))[0]!.used, 20)
      assert.equal((await s.peek(k, w, T0 + 130_000))[0]!.used, 0)
    }))

    it('keeps a fixed period until its end, then starts the next one empty', () => withStore(async (s, k) => {
      const jan = month(1000)
      const r = await reserve(s, k, 900, [jan], T0 + 1000, 'q1')
      assert.equal(r.windows[0]!.resetAt, jan.kind === 'fixed' ? jan.end : 0)
      await s.settle({ key: k, id: 'q1', reserved: 900, actual: 800, windows: [jan], now: T0 + 2000 })
      const refused = await reserve(s, k, 300, [jan], T0 + 10_000)
      assert.equal(refused.ok, false)
      assert.equal(refused.windows[0]!.retryAfterMs, Date.parse('2026-02-01T00:00:00Z') - (T0 + 10_000))
      const feb = month(1000, Date.parse('2026-02-01T00:00:00Z'), Date.parse('2026-03-01T00:00:00Z'))
      const next = await reserve(s, k, 300, [feb], Date.parse('2026-02-01T00:00:00Z'))
      assert.equal(next.ok, true)
      assert.equal(next.windows[0]!.used, 300)
    }))

    it('expires a quota reservation never settled (a crashed process) after its lease', () => withStore(async (s, k) => {
      const w = [month(1000)]
      await reserve(s, k, 600, w, T0, 'lost', 30_000)
      assert.equal((await s.peek(k, w, T0 + 29_999))[0]!.used, 600)
      assert.equal((await s.peek(k, w, T0 + 30_000))[0]!.used, 0)
      // A settle arriving after the lease expired still commits what was used.
      await s.settle({ key: k, id: 'lost', reserved: 600, actual: 250, windows: w, now: T0 + 40_000 })
      assert.equal((await s.peek(k, w, T0 + 40_000))[0]!.used, 250)
    }))

    it('expires each unsettled lease at its own time, whatever order they were taken and settled in', () => withStore(async (s, k) => {
      const w = [month(1000)]
      await reserve(s, k, 100, w, T0, 'a', 30_000) // expires T0 + 30 s, settled at once
      await s.settle({ key: k, id: 'a', reserved: 100, actual: 100, windows: w, now: T0 + 1 })
      await reserve(s, k, 200, w, T0 + 10_000, 'b', 30_000) // expires T0 + 40 s
      await reserve(s, k, 300, w, T0 + 20_000, 'c', 5_000) // taken later, expires earlier: T0 + 25 s
      const used = async (at: number) => (await s.peek(k, w, at))[0]!.used
      assert.equal(await used(T0 + 24_999), 600)
      assert.equal(await used(T0 + 25_000), 300) // c gone, a (settled) and b stay
      assert.equal(await used(T0 + 39_999), 300)
      assert.equal(await used(T0 + 40_000), 100) // only what was settled
    }))

    it("answers, for an admitted reservation, each window's state as a peek right after it sees it", () => withStore(async (s, k) => {
      const w = [tpm(1000), month(5000)]
      for (const [amount, at] of [[100, T0], [0, T0 + 10], [250, T0 + 30_000], [40, T0 + 20_000] /* a clock that went back */, [10, T0 + 61_000]] as const) {
        const r = await reserve(s, k, amount, w, at)
        assert.equal(r.ok, true)
        assert.deepEqual(r.windows, await s.peek(k, w, at))
      }
      // The figures themselves: 100 + 0 + 250 + 40 + 10 reserved; at T0 + 61 s the first two have left the minute.
      const [minute, month_] = await s.peek(k, w, T0 + 61_000)
      assert.deepEqual([minute!.used, minute!.resetAt, month_!.used], [300, T0 + 121_000, 400])
    }))

    it('reserves in every window or in none', () => withStore(async (s, k) => {
      const w = [tpm(1000), month(500)]
      assert.equal((await reserve(s, k, 400, w, T0)).ok, true)
      const refused = await reserve(s, k, 200, w, T0 + 1)
      assert.equal(refused.ok, false)
      assert.equal(refused.windows[0]!.fits, true)
      assert.equal(refused.windows[1]!.fits, false)
      const state = await s.peek(k, w, T0 + 2)
      assert.equal(state[0]!.used, 400)
      assert.equal(state[1]!.used, 400)
    }))

    it('admits exactly up to the limit under concurrent reservations', () => withStore(async (s, k) => {
      const results = await Promise.all(Array.from({ length: 40 }, (_, i) => reserve(s, k, 10, [tpm(105)], T0 + i)))
      assert.equal(results.filter((r) => r.ok).length, 10)
      assert.equal((await s.peek(k, [tpm(105)], T0 + 100))[0]!.used, 100)
    }))

    it('bounds a sliding log whatever the rate, never counting an entry out of the window early', { skip: !opts.logLength }, () => withStore(async (s, k) => {
      const w = tpm(1_000_000) as CounterWindow & { kind: 'sliding' }
      // 3000 requests of 10 tokens, one every 10 ms over 30 s (100 req/s into one counter), each settled to 7.
      const N = 3000
      for (let i = 0; i < N; i++) {
        const id = randomUUID()
        assert.equal((await reserve(s, k, 10, [w], T0 + i * 10, id)).ok, true)
        await s.settle({ key: k, id, reserved: 10, actual: 7, windows: [w], now: T0 + i * 10 + 1 })
      }
      const length = await opts.logLength!(s, k, w)
      assert.ok(length >= LOG_CAP && length <= LOG_CAP + LOG_BUCKETS + 1, `log of ${length} entries for ${N} requests (bound ${LOG_CAP + LOG_BUCKETS + 1})`)
      assert.equal((await s.peek(k, [w], T0 + N * 10))[0]!.used, N * 7, 'every token still in the window is counted')
      // 80 s after T0 the exact log holds the requests stamped after T0 + 20 s: i > 2000, 999 of them. A bucket
      // may keep a few that left the window (at most windowMs / LOG_BUCKETS = 468 ms of them: 47 requests) and
      // never lets one go early.
      const exact = 999 * 7
      const used = (await s.peek(k, [w], T0 + 80_000))[0]!.used
      assert.ok(used >= exact && used <= exact + 47 * 7, `used ${used}, exact ${exact}`)
      assert.equal((await s.peek(k, [w], T0 + 60_000 + N * 10))[0]!.used, 0, 'all gone a window after the last')
    }))

    it('a reservation counted in a shared entry settles to its own actual amount', { skip: !opts.logLength }, () => withStore(async (s, k) => {
      const w = tpm(1_000_000) as CounterWindow & { kind: 'sliding' }
      const ids = Array.from({ length: LOG_CAP + 500 }, () => randomUUID())
      // All open at once (one per ms), then settled: half to 0 (refunded), half to 3.
      for (let i = 0; i < ids.length; i++) assert.equal((await reserve(s, k, 10, [w], T0 + i, ids[i])).ok, true)
      assert.equal((await s.peek(k, [w], T0 + ids.length))[0]!.used, ids.length * 10)
      for (let i = 0; i < ids.length; i++) await s.settle({ key: k, id: ids[i]!, reserved: 10, actual: i % 2 === 0 ? 0 : 3, windows: [w], now: T0 + ids.length })
      assert.equal((await s.peek(k, [w], T0 + ids.length + 1))[0]!.used, Math.floor(ids.length / 2) * 3)
    }))

    it('keeps separate counters per key and per window name', () => withStore(async (s, k) => {
      await reserve(s, k, 100, [tpm(100)], T0)
      assert.equal((await reserve(s, `${k}:other`, 100, [tpm(100)], T0)).ok, true)
      assert.equal((await reserve(s, k, 100, [{ kind: 'sliding', name: 'rpm', limit: 100, windowMs: MIN }], T0)).ok, true)
    }))
  })
}
