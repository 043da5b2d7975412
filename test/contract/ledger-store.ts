import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { LedgerStore, MessageRecord, UsageRecord } from '../../src/stores/ledger.ts'

const DAY1 = Date.parse('2026-03-01T10:00:00.123Z')
const DAY2 = Date.parse('2026-03-02T23:59:59.999Z')

export function usageRecord(over: Partial<UsageRecord> = {}): UsageRecord {
  return {
    ts: DAY1, requestId: 'req-1', consumer: 'team-a', product: 'standard', model: 'gpt-4o', backend: 'east', status: 200,
    promptTokens: 10, completionTokens: 20, cachedTokens: 0, reasoningTokens: 0, costUsd: 0.000225, latencyMs: 120, ttftMs: null,
    cacheHit: false, savedUsd: 0, stream: false, attempts: 1, errorCode: null, ...over,
  }
}

/**
 * The behaviour every LedgerStore must have (SQLite and PostgreSQL run it). `make` returns a fresh, empty
 * store that no other run shares (its own file, or its own table prefix) and a disposer.
 */
export function ledgerStoreContract(name: string, make: () => Promise<{ store: LedgerStore; reopen: () => Promise<LedgerStore>; dispose: () => Promise<void> }>, opts: { skip?: boolean } = {}): void {
  describe(`LedgerStore: ${name}`, { skip: opts.skip }, () => {
    const withStore = async (fn: (s: LedgerStore, reopen: () => Promise<LedgerStore>) => Promise<void>) => {
      const { store, reopen, dispose } = await make()
      try { await fn(store, reopen) } finally { await dispose() }
    }

    it('answers an empty report and no records when nothing was written', () => withStore(async (s) => {
      assert.deepEqual(await s.usage({ by: 'consumer' }), [])
      assert.deepEqual(await s.records(), [])
      assert.deepEqual(await s.messages(), [])
      assert.equal(await s.ping(), true)
    }))

    it('round-trips every field of a record, nulls included', () => withStore(async (s) => {
      const a = usageRecord({ ttftMs: 35, stream: true, cachedTokens: 4, reasoningTokens: 7, attempts: 2 })
      const b = usageRecord({ ts: DAY1 + 1, requestId: 'req-2', consumer: null, product: null, model: null, backend: null, status: 401, promptTokens: 0,
        completionTokens: 0, costUsd: null, latencyMs: 1, cacheHit: false, attempts: 0, errorCode: 'invalid_api_key' })
      const c = usageRecord({ ts: DAY1 + 2, requestId: 'req-3', backend: null, cacheHit: true, costUsd: 0, savedUsd: 0.000225 })
      // An MCP tool call: counted in bytes (beyond 2^32, so a 32-bit column would not do).
      const d = usageRecord({ ts: DAY1 + 3, requestId: 'req-4', model: 'mcp:pets/getPet', promptTokens: 0, completionTokens: 0, costUsd: null, bytesIn: 57, bytesOut: 5_000_000_000 })
      await s.append([a, b, c, d])
      assert.deepEqual(await s.records(), [a, b, c, d])
      assert.deepEqual(await s.records({ requestIds: ['req-3', 'req-1'] }), [a, c])
      assert.deepEqual(await s.records({ since: DAY1 + 1, until: DAY1 + 2 }), [b])
      assert.deepEqual(await s.records({ limit: 1 }), [a])
    }))

    it('aggregates by consumer, model, backend and day, with errors, cache hits and costs', () => withStore(async (s) => {
      await s.append([
        usageRecord({ requestId: 'r1', consumer: 'team-a', model: 'gpt-4o', backend: 'east', promptTokens: 100, completionTokens: 50, costUsd: 0.00075 }),
        usageRecord({ requestId: 'r2', consumer: 'team-a', model: 'gpt-4o-mini', backend: 'west', promptTokens: 10, completionTokens: 5, costUsd: 0.0000045 }),
        usageRecord({ requestId: 'r3', ts: DAY2, consumer: 'team-b', model: 'gpt-4o', backend: null, cacheHit: true, promptTokens: 7, completionTokens: 3, costUsd: 0, savedUsd: 0.0000475 }),
        usageRecord({ requestId: 'r4', ts: DAY2, consumer: 'team-b', model: 'gpt-4o', backend: 'east', status: 429, promptTokens: 0, completionTokens: 0, costUsd: 0, errorCode: 'rate_limit_exceeded' }),
        usageRecord({ requestId: 'r5', ts: DAY2, consumer: null, model: 'gpt-4o', backend: null, status: 401, promptTokens: 0, completionTokens: 0, costUsd: null, errorCode: 'invalid_api_key' }),
      ])
      const byConsumer = await s.usage({ by: 'consumer' })
      assert.deepEqual(byConsumer.map((r) => r.key), ['(none)', 'team-a', 'team-b'])
      const a = byConsumer.find((r) => r.key === 'team-a')!
      assert.deepEqual({ ...a, costUsd: undefined }, { key: 'team-a', requests: 2, promptTokens: 110, completionTokens: 55, totalTokens: 165, costUsd: undefined, cacheHits: 0, errors: 0, savedUsd: 0 })
      assert.ok(Math.abs(a.costUsd - 0.0007545) < 1e-12, `cost ${a.costUsd}`)
      const b = byConsumer.find((r) => r.key === 'team-b')!
      assert.deepEqual(b, { key: 'team-b', requests: 2, promptTokens: 7, completionTokens: 3, totalTokens: 10, costUsd: 0, cacheHits: 1, errors: 1, savedUsd: 0.0000475 })
      const none = byConsumer.find((r) => r.key === '(none)')!
      assert.equal(none.errors, 1)
      assert.equal(none.costUsd, 0)

      const byModel = await s.usage({ by: 'model' })
      assert.deepEqual(byModel.map((r) => [r.key, r.requests, r.totalTokens, r.cacheHits, r.savedUsd]), [['gpt-4o', 4, 160, 1, 0.0000475], ['gpt-4o-mini', 1, 15, 0, 0]])
      const byBackend = await s.usage({ by: 'backend' })
      assert.deepEqual(byBackend.map((r) => [r.key, r.requests]), [['(none)', 2], ['east', 2], ['west', 1]])
      const byDay = await s.usage({ by: 'day' })
      assert.deepEqual(byDay.map((r) => [r.key, r.requests, r.totalTokens]), [['2026-03-01', 2, 165], ['2026-03-02', 3, 10]])
    }))

    it('filters the report by [since, until)', () => withStore(async (s) => {
      await s.append([usageRecord({ requestId: 'x1', ts: DAY1 }), usageRecord({ requestId: 'x2', ts: DAY2 })])
      assert.deepEqual((await s.usage({ by: 'consumer', since: DAY1 + 1 })).map((r) => r.requests), [1])
      assert.deepEqual((await s.usage({ by: 'consumer', until: DAY2 })).map((r) => r.requests), [1])
      assert.deepEqual((await s.usage({ by: 'consumer', since: DAY1, until: DAY2 + 1 })).map((r) => r.requests), [2])
      assert.deepEqual(await s.usage({ by: 'consumer', since: DAY2 + 1 }), [])
    }))

    it('writes a large batch in one call', () => withStore(async (s) => {
      const many = Array.from({ length: 5000 }, (_, i) => usageRecord({ requestId: `bulk-${i}`, ts: DAY1 + i, promptTokens: 1, completionTokens: 2, costUsd: 0.5 }))
      await s.append(many)
      const [row] = await s.usage({ by: 'model' })
      assert.deepEqual({ ...row }, { key: 'gpt-4o', requests: 5000, promptTokens: 5000, completionTokens: 10000, totalTokens: 15000, costUsd: 2500, cacheHits: 0, errors: 0, savedUsd: 0 })
      assert.equal((await s.records()).length, 5000)
    }))

    it('keeps records across reopening (migrations run once, data stays)', () => withStore(async (s, reopen) => {
      await s.append([usageRecord({ requestId: 'keep-1' })])
      const again = await reopen()
      try {
        await again.append([usageRecord({ requestId: 'keep-2' })])
        assert.deepEqual((await again.records()).map((r) => r.requestId), ['keep-1', 'keep-2'])
      } finally {
        await again.close()
      }
    }))

    it('stores message logs apart from usage records', () => withStore(async (s) => {
      const m: MessageRecord = { ts: DAY1, requestId: 'req-m', consumer: 'team-a', product: 'standard', model: 'gpt-4o',
        prompt: JSON.stringify([{ role: 'user', content: 'héllo ✓ [REDACTED:email]' }]), completion: 'hi there', truncated: true }
      const n: MessageRecord = { ...m, ts: DAY1 + 5, requestId: 'req-n', prompt: null, completion: null, truncated: false, consumer: null }
      await s.appendMessages([m, n])
      assert.deepEqual(await s.messages(), [m, n])
      assert.deepEqual(await s.messages({ requestIds: ['req-n'] }), [n])
      assert.deepEqual(await s.records(), [])
    }))

    it('is idempotent by record id: a batch written again (replay, retry after a lost acknowledgement) adds nothing', () => withStore(async (s) => {
      const batch = [usageRecord({ requestId: 'idem-1', recordId: 'rid-1' }), usageRecord({ requestId: 'idem-2', recordId: 'rid-2', ts: DAY1 + 1 })]
      await s.append(batch)
      await s.append(batch)
      // Half old, half new, and a copy inside the same batch: only the new one lands.
      await s.append([batch[1]!, usageRecord({ requestId: 'idem-3', recordId: 'rid-3', ts: DAY1 + 2 }), usageRecord({ requestId: 'idem-3', recordId: 'rid-3', ts: DAY1 + 2 })])
      assert.deepEqual((await s.records()).map((r) => r.requestId), ['idem-1', 'idem-2', 'idem-3'])
      // The pass it contrasts with: two requests that share a client-chosen request id are two records.
      await s.append([usageRecord({ requestId: 'idem-1', recordId: 'rid-4', ts: DAY1 + 3 })])
      assert.deepEqual((await s.records()).map((r) => r.requestId), ['idem-1', 'idem-2', 'idem-3', 'idem-1'])
      // Without a record id the request id is the key.
      await s.append([usageRecord({ requestId: 'plain', ts: DAY1 + 4 })])
      await s.append([usageRecord({ requestId: 'plain', ts: DAY1 + 4 })])
      assert.equal((await s.records({ requestIds: ['plain'] })).length, 1)
      const [row] = await s.usage({ by: 'consumer' })
      assert.equal(row!.requests, 5)
    }))

    it('is idempotent for message logs too', () => withStore(async (s) => {
      const m: MessageRecord = { ts: DAY1, requestId: 'msg-1', consumer: 'team-a', product: null, model: 'gpt-4o', prompt: 'p', completion: 'c', truncated: false, recordId: 'mid-1' }
      await s.appendMessages([m])
      await s.appendMessages([m, { ...m, recordId: 'mid-2', ts: DAY1 + 1 }])
      assert.deepEqual((await s.messages()).map((x) => [x.requestId, x.ts]), [['msg-1', DAY1], ['msg-1', DAY1 + 1]])
    }))
  })
}
