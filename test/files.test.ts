import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI, { toFile } from 'openai'
import { startMockServer, type MockServer } from '../src/mock/llm.ts'
import { startTestGateway, type TestGateway } from './helpers/gateway.ts'

const KEY_A = 'sk-files-team-a'
const KEY_B = 'sk-files-team-b'
const BACKEND_KEY = 'sk-backend-files-secret'

// Two batch requests, each 'Say hello' with max_tokens 5.
// By hand (o200k_base): 'Say hello' = Say| hello = 2 tokens, 'user' = 1; 3 per message + 3 priming = 9 per line.
// The mock answers max_tokens = 5 tokens per line. Batch totals: 18 prompt, 10 completion.
const LINE = (id: string) => JSON.stringify({ custom_id: id, method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 5 } })
const JSONL = `${LINE('req-1')}\n${LINE('req-2')}\n`
// OpenAI's published Batch API price for gpt-4o-mini: $0.075 / 1M input, $0.30 / 1M output (50 % of list).
const EXPECTED_COST = (18 * 0.075 + 10 * 0.3) / 1e6

describe('files and batches through Sluice (openai SDK → gateway → mock)', () => {
  let mock: MockServer
  let gw: TestGateway
  let a: OpenAI
  let b: OpenAI
  const dir = mkdtempSync(join(tmpdir(), 'sluice-files-'))

  before(async () => {
    mock = await startMockServer()
    gw = await startTestGateway(`
ledger: { type: sqlite, path: ${join(dir, 'ledger.db')}, flushInterval: 20ms }
backends:
  - { id: oai, type: openai, url: ${mock.url}/v1, auth: { apiKey: ${BACKEND_KEY} } }
models:
  - { name: gpt-4o-mini, target: oai }
files: { backend: oai, maxUploadBytes: 64KiB }
products:
  - { id: standard }
consumers:
  - { id: team-a, product: standard, keys: [ { value: ${KEY_A} } ] }
  - { id: team-b, product: standard, keys: [ { value: ${KEY_B} } ] }
`)
    a = new OpenAI({ apiKey: KEY_A, baseURL: `${gw.url}/v1`, maxRetries: 0 })
    b = new OpenAI({ apiKey: KEY_B, baseURL: `${gw.url}/v1`, maxRetries: 0 })
  })
  after(async () => {
    await gw.close()
    await mock.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('uploads, lists, retrieves, reads and deletes a file; another consumer sees none of it', async () => {
    const file = await a.files.create({ file: await toFile(Buffer.from(JSONL), 'batch.jsonl'), purpose: 'batch' })
    assert.match(file.id, /^file-/)
    assert.equal(file.bytes, Buffer.byteLength(JSONL))
    assert.equal(file.purpose, 'batch')
    // The real upload reached the backend, with the gateway's key (never the consumer's).
    const got = mock.received.find((r) => r.body.upload === file.id)
    assert.equal(got?.body.bytes, Buffer.byteLength(JSONL))

    const listed = await a.files.list()
    assert.ok(listed.data.some((f) => f.id === file.id))
    const retrieved = await a.files.retrieve(file.id)
    assert.equal(retrieved.id, file.id)
    assert.equal(await (await a.files.content(file.id)).text(), JSONL)

    // Team B: the same id is unknown to it (404, as for an id that does not exist), and its list is empty of A's.
    await assert.rejects(b.files.retrieve(file.id), (e: unknown) => e instanceof OpenAI.NotFoundError)
    await assert.rejects(b.files.content(file.id), (e: unknown) => e instanceof OpenAI.NotFoundError)
    await assert.rejects(b.files.delete(file.id), (e: unknown) => e instanceof OpenAI.NotFoundError)
    const bList = await b.files.list()
    assert.ok(!bList.data.some((f) => f.id === file.id))
    const other = await b.files.create({ file: await toFile(Buffer.from('{}\n'), 'b.jsonl'), purpose: 'user_data' })
    assert.ok((await b.files.list()).data.some((f) => f.id === other.id))
    assert.ok(!(await a.files.list()).data.some((f) => f.id === other.id))

    const deleted = await a.files.delete(file.id)
    assert.equal(deleted.deleted, true)
    await assert.rejects(a.files.retrieve(file.id), (e: unknown) => e instanceof OpenAI.NotFoundError)
  })

  it('runs a batch, records its usage at the batch price when the output is fetched, once', async () => {
    const input = await a.files.create({ file: await toFile(Buffer.from(JSONL), 'batch.jsonl'), purpose: 'batch' })
    const batch = await a.batches.create({ input_file_id: input.id, endpoint: '/v1/chat/completions', completion_window: '24h' })
    assert.equal(batch.status, 'validating')
    // Team B may neither read it nor start a batch from A's file (paired with A's success below).
    await assert.rejects(b.batches.retrieve(batch.id), (e: unknown) => e instanceof OpenAI.NotFoundError)
    await assert.rejects(b.batches.cancel(batch.id), (e: unknown) => e instanceof OpenAI.NotFoundError)
    await assert.rejects(b.batches.create({ input_file_id: input.id, endpoint: '/v1/chat/completions', completion_window: '24h' }), (e: unknown) => e instanceof OpenAI.NotFoundError)

    const done = await a.batches.retrieve(batch.id)
    assert.equal(done.status, 'completed')
    assert.deepEqual(done.request_counts, { total: 2, completed: 2, failed: 0 })
    assert.ok(done.output_file_id)
    assert.ok((await a.batches.list()).data.some((x) => x.id === batch.id))
    assert.ok(!(await b.batches.list()).data.some((x) => x.id === batch.id))
    await assert.rejects(b.files.content(done.output_file_id!), (e: unknown) => e instanceof OpenAI.NotFoundError)

    const out = await (await a.files.content(done.output_file_id!)).text()
    const lines = out.trim().split('\n').map((l) => JSON.parse(l) as { custom_id: string; response: { body: { usage: { prompt_tokens: number; completion_tokens: number } } } })
    assert.deepEqual(lines.map((l) => l.custom_id), ['req-1', 'req-2'])
    assert.deepEqual(lines.map((l) => [l.response.body.usage.prompt_tokens, l.response.body.usage.completion_tokens]), [[9, 5], [9, 5]])

    const rowsOf = async () => {
      await gw.gw.ledger!.flush(5_000)
      return gw.gw.ledger!.store.records({ requestIds: [batch.id] })
    }
    let rows = await rowsOf()
    for (let i = 0; rows.length === 0 && i < 200; i++) { await new Promise((r) => setTimeout(r, 10)); rows = await rowsOf() }
    assert.equal(rows.length, 1)
    const row = rows[0]!
    assert.equal(row.consumer, 'team-a')
    assert.equal(row.model, 'gpt-4o-mini')
    assert.equal(row.backend, 'oai')
    assert.equal(row.promptTokens, 18)
    assert.equal(row.completionTokens, 10)
    assert.ok(Math.abs(row.costUsd! - EXPECTED_COST) < 1e-12, `cost ${row.costUsd} vs ${EXPECTED_COST}`)

    // Fetched again: the same bytes, and still one row.
    assert.equal(await (await a.files.content(done.output_file_id!)).text(), out)
    await gw.gw.ledger!.flush(5_000)
    assert.equal((await rowsOf()).length, 1)
  })

  it('fills a page with the caller\'s own files when the backend\'s page holds another\'s', async () => {
    const mine = await a.files.create({ file: await toFile(Buffer.from('{}\n'), 'mine.jsonl'), purpose: 'user_data' })
    // Newer files of team B come first in the backend's (newest first) list.
    await b.files.create({ file: await toFile(Buffer.from('{}\n'), 'b1.jsonl'), purpose: 'user_data' })
    await b.files.create({ file: await toFile(Buffer.from('{}\n'), 'b2.jsonl'), purpose: 'user_data' })
    const page = await a.files.list({ limit: 1 })
    assert.deepEqual(page.data.map((f) => f.id), [mine.id])
    const bPage = await b.files.list({ limit: 1 })
    assert.equal(bPage.data.length, 1)
    assert.equal(bPage.data[0]!.filename, 'b2.jsonl')
  })

  it('cancels a batch before it runs', async () => {
    const input = await a.files.create({ file: await toFile(Buffer.from(JSONL), 'batch.jsonl'), purpose: 'batch' })
    const batch = await a.batches.create({ input_file_id: input.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { job: 'nightly' } })
    const cancelling = await a.batches.cancel(batch.id)
    assert.equal(cancelling.status, 'cancelling')
    const cancelled = await a.batches.retrieve(batch.id)
    assert.equal(cancelled.status, 'cancelled')
    assert.equal(cancelled.output_file_id, null)
  })
})
