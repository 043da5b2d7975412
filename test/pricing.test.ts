import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { loadConfigText } from '../src/config/load.ts'
import { builtinPolicies } from '../src/policies/registry.ts'
import { normaliseModel, PriceTable } from '../src/pricing/table.ts'
import { batchingOf } from '../src/ledger/ledger.ts'

// OpenAI's list prices, USD per 1M tokens (input, output, cached input), as published on openai.com/api/pricing:
// fixture figures written here, not read from src/pricing/prices.ts.
const GPT_4O = { input: 2.5, output: 10, cached: 1.25 }
const GPT_4O_MINI = { input: 0.15, output: 0.6, cached: 0.075 }
const GPT_41_MINI = { input: 0.4, output: 1.6, cached: 0.1 }

const usage = (p: number, c: number, cached = 0) => ({ promptTokens: p, completionTokens: c, totalTokens: p + c, cachedTokens: cached, reasoningTokens: 0 })

describe('price table', () => {
  it('normalises dated snapshots, provider prefixes and -latest', () => {
    assert.equal(normaliseModel('gpt-4o-2024-08-06'), 'gpt-4o')
    assert.equal(normaliseModel('GPT-4o-mini-2024-07-18'), 'gpt-4o-mini')
    assert.equal(normaliseModel('claude-sonnet-4-20250514'), 'claude-sonnet-4')
    assert.equal(normaliseModel('openai/gpt-4.1'), 'gpt-4.1')
    assert.equal(normaliseModel('claude-sonnet-4-5-latest'), 'claude-sonnet-4-5')
    assert.equal(normaliseModel('gpt-5.4-mini'), 'gpt-5.4-mini')
  })

  it('prices dated and prefixed names like their family, unknown models not at all', () => {
    const t = new PriceTable()
    assert.deepEqual(t.priceOf('gpt-4o-2024-11-20'), GPT_4O)
    assert.deepEqual(t.priceOf('azure/gpt-4o-mini'), GPT_4O_MINI)
    assert.equal(t.priceOf('my-finetune'), null)
    // The public name has no price, the deployment name does.
    assert.deepEqual(t.priceOf('house-model', 'gpt-4.1-mini-2025-04-14'), GPT_41_MINI)
  })

  it('computes cost per 1M tokens, cached prompt tokens at the cached price', () => {
    const p = { input: 2.5, output: 10, cached: 1.25 }
    assert.equal(PriceTable.cost(p, usage(1_000_000, 0)), 2.5)
    assert.equal(PriceTable.cost(p, usage(0, 1_000_000)), 10)
    // 1000 prompt tokens of which 400 cached: 600 * 2.5 + 400 * 1.25 + 200 * 10, per million.
    assert.equal(PriceTable.cost(p, usage(1000, 200, 400)), (600 * 2.5 + 400 * 1.25 + 200 * 10) / 1e6)
    // No cached price: cached tokens cost the input price.
    assert.equal(PriceTable.cost({ input: 1, output: 2 }, usage(100, 0, 50)), 100 / 1e6)
  })

  it('takes overrides from the config; an override for one snapshot leaves the family alone', () => {
    const res = loadConfigText(`ledger: { type: none }
pricing:
  models:
    gpt-4o: { input: 2, output: 8 }
    gpt-4o-2024-05-13: { input: 5, output: 15 }
    house-model: { input: 0.5, output: 1, cached: 0.1 }
`, { registry: builtinPolicies(), env: {} })
    assert.ok(res.ok, res.ok ? '' : JSON.stringify(res.problems))
    if (!res.ok) return
    const t = new PriceTable(res.config.pricing.models)
    assert.deepEqual(t.priceOf('gpt-4o-2024-08-06'), { input: 2, output: 8 })
    assert.deepEqual(t.priceOf('gpt-4o-2024-05-13'), { input: 5, output: 15 })
    assert.deepEqual(t.priceOf('house-model'), { input: 0.5, output: 1, cached: 0.1 })
    assert.deepEqual(t.priceOf('gpt-4o-mini'), GPT_4O_MINI)
  })

  it('refuses a negative price, and reads the ledger batching knobs with units', () => {
    const bad = loadConfigText('pricing: { models: { x: { input: -1 } } }\n', { registry: builtinPolicies(), env: {} })
    assert.equal(bad.ok, false)
    const res = loadConfigText('ledger: { type: sqlite, path: /tmp/x.db, batchSize: 200, batchBytes: 256KiB, flushInterval: 250ms, maxQueue: 1000, maxQueueBytes: 8MiB }\n', { registry: builtinPolicies(), env: {} })
    assert.ok(res.ok)
    if (res.ok) assert.deepEqual(batchingOf(res.config.ledger), { batchSize: 200, batchBytes: 256 * 1024, flushInterval: 250, maxQueue: 1000, maxQueueBytes: 8 * 1024 ** 2 })
  })
})
