import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import OpenAI, { AzureOpenAI, toFile } from 'openai'
import { startMockServer, type MockServer } from '../src/mock/llm.ts'
import { serviceAvailable, startTestGateway, type TestGateway } from './helpers/gateway.ts'

const KEY_A = 'sk-files-azure-team-a'
const KEY_B = 'sk-files-azure-team-b'
const LINE = JSON.stringify({ custom_id: 'r1', method: 'POST', url: '/chat/completions', body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 3 } }) + '\n'

const consumers = `
products: [ { id: standard } ]
consumers:
  - { id: team-a, product: standard, keys: [ { value: ${KEY_A} } ] }
  - { id: team-b, product: standard, keys: [ { value: ${KEY_B} } ] }
`

describe('files and batches: Azure OpenAI forms (AzureOpenAI SDK → gateway → an azure-openai backend)', () => {
  let mock: MockServer
  let gw: TestGateway

  before(async () => {
    mock = await startMockServer()
    gw = await startTestGateway(`
backends:
  - { id: aoai, type: azure-openai, url: ${mock.url}, apiVersion: 2024-10-21, auth: { apiKey: azure-backend-key } }
files: { backend: aoai }
${consumers}`)
  })
  after(async () => {
    await gw.close()
    await mock.close()
  })

  it('serves /openai/files and /openai/batches with api-version, and the /openai/v1/ forms, owner-scoped', async () => {
    const azure = new AzureOpenAI({ endpoint: gw.url, apiKey: KEY_A, apiVersion: '2024-10-21', maxRetries: 0 })
    const file = await azure.files.create({ file: await toFile(Buffer.from(LINE), 'in.jsonl'), purpose: 'batch' })
    assert.equal((await azure.files.retrieve(file.id)).id, file.id)
    assert.ok((await azure.files.list()).data.some((f) => f.id === file.id))
    const batch = await azure.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' })
    assert.equal((await azure.batches.retrieve(batch.id)).status, 'completed')

    // Azure's v1 surface through the plain OpenAI client, the same objects.
    const v1 = new OpenAI({ apiKey: KEY_A, baseURL: `${gw.url}/openai/v1`, maxRetries: 0 })
    assert.equal((await v1.files.retrieve(file.id)).id, file.id)
    assert.ok((await v1.batches.list()).data.some((b) => b.id === batch.id))

    const otherAzure = new AzureOpenAI({ endpoint: gw.url, apiKey: KEY_B, apiVersion: '2024-10-21', maxRetries: 0 })
    await assert.rejects(otherAzure.files.retrieve(file.id), (e: unknown) => e instanceof OpenAI.NotFoundError)
    await assert.rejects(otherAzure.batches.retrieve(batch.id), (e: unknown) => e instanceof OpenAI.NotFoundError)
    assert.ok(!(await otherAzure.files.list()).data.some((f) => f.id === file.id))
  })
})

describe('files: ownership shared by replicas through the PostgreSQL ledger', async () => {
  const up = await serviceAvailable('postgres')
  const url = 'postgres://postgres@127.0.0.1:5432/test'
  const prefix = `t_files_${randomBytes(4).toString('hex')}_`
  let mock: MockServer
  let one: TestGateway
  let two: TestGateway

  before(async () => {
    if (!up) return
    mock = await startMockServer()
    const yaml = `
ledger: { type: postgres, url: ${url}, tablePrefix: ${prefix}, journal: false, flushInterval: 20ms }
backends:
  - { id: oai, type: openai, url: ${mock.url}/v1, auth: { apiKey: sk-backend-pg } }
files: { backend: oai }
${consumers}`
    one = await startTestGateway(yaml)
    two = await startTestGateway(yaml)
  })
  after(async () => {
    if (!up) return
    await one.close()
    await two.close()
    await mock.close()
    const c = new pg.Client({ connectionString: url })
    await c.connect()
    const tables = await c.query<{ tablename: string }>(`SELECT tablename FROM pg_tables WHERE tablename LIKE $1`, [`${prefix}%`])
    for (const t of tables.rows) await c.query(`DROP TABLE IF EXISTS ${t.tablename}`)
    await c.end()
  })

  it('a file uploaded through one replica is its owner\'s on the other, and nobody else\'s', { skip: !up }, async () => {
    const a1 = new OpenAI({ apiKey: KEY_A, baseURL: `${one.url}/v1`, maxRetries: 0 })
    const a2 = new OpenAI({ apiKey: KEY_A, baseURL: `${two.url}/v1`, maxRetries: 0 })
    const b2 = new OpenAI({ apiKey: KEY_B, baseURL: `${two.url}/v1`, maxRetries: 0 })
    const file = await a1.files.create({ file: await toFile(Buffer.from(LINE), 'in.jsonl'), purpose: 'batch' })
    assert.equal((await a2.files.retrieve(file.id)).id, file.id)
    await assert.rejects(b2.files.retrieve(file.id), (e: unknown) => e instanceof OpenAI.NotFoundError)
    const batch = await a2.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' })
    const done = await a1.batches.retrieve(batch.id)
    assert.equal(done.status, 'completed')
    // The output is read on both replicas; the batch's usage is recorded by one of them, once.
    await (await a1.files.content(done.output_file_id!)).text()
    await (await a2.files.content(done.output_file_id!)).text()
    await one.gw.ledger!.flush(5_000)
    await two.gw.ledger!.flush(5_000)
    const rows = await one.gw.ledger!.store.records({ requestIds: [batch.id] })
    assert.equal(rows.length, 1)
    assert.equal(rows[0]!.consumer, 'team-a')
    // By hand (o200k_base): 'Say hello' 2 + 'user' 1 + 3 + 3 priming = 9 prompt; max_tokens 3.
    assert.equal(rows[0]!.promptTokens, 9)
    assert.equal(rows[0]!.completionTokens, 3)
  })
})
