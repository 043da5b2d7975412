import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import pg from 'pg'
import { serviceAvailable } from './helpers/gateway.ts'
import { spawnGateway, type GatewayProcess } from './helpers/process.ts'
import { startRecordingMock, type RecordingMock } from './helpers/recording-mock.ts'

// A Responses conversation by previous_response_id against an Anthropic-dialect backend (which keeps no state),
// its turns served by two different gateway processes sharing the ledger database: each follow-up is sent to the
// other process right after the previous answer, and the backend must receive the whole conversation every time.
const ADMIN = 'admin-token-responses-replicas'
const KEY = 'sk-responses-replicas-1'
const pgUp = await serviceAvailable('postgres')
const dir = mkdtempSync(join(tmpdir(), 'sluice-responses-'))
const running: GatewayProcess[] = []
const pgPrefix = `rs${randomUUID().slice(0, 8)}_`
let mock: RecordingMock | null = null

after(async () => {
  for (const p of running) if (p.child.exitCode === null) p.child.kill('SIGKILL')
  await mock?.close()
  rmSync(dir, { recursive: true, force: true })
  if (pgUp) {
    const c = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/test' })
    await c.connect()
    const t = await c.query<{ tablename: string }>('SELECT tablename FROM pg_tables WHERE tablename LIKE $1', [`${pgPrefix}%`])
    for (const r of t.rows) await c.query(`DROP TABLE IF EXISTS "${r.tablename}"`)
    await c.end()
  }
})

async function twoGateways(ledger: string, backendUrl: string): Promise<[GatewayProcess, GatewayProcess]> {
  const start = async () => {
    const file = join(dir, `gw-${randomUUID().slice(0, 8)}.yaml`)
    writeFileSync(file, `
listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0, token: ${ADMIN} }
ledger: ${ledger}
logging: { level: warn }
backends:
  - { id: claude, type: anthropic, url: ${backendUrl}, auth: { apiKey: sk-ant-replicas } }
models:
  - { name: claude-sonnet-4-5, target: claude }
consumers:
  - { id: team-a, keys: [ { value: ${KEY} } ] }
`)
    const p = await spawnGateway(file)
    running.push(p)
    return p
  }
  return Promise.all([start(), start()])
}

interface SentMessage { role: string; content: string | Array<{ type: string; text?: string }> }
const textOf = (m: SentMessage) => (typeof m.content === 'string' ? m.content : m.content.map((b) => b.text ?? '').join(''))

async function threeTurnsAcrossProcesses(ledger: string): Promise<void> {
  mock = await startRecordingMock()
  const [a, b] = await twoGateways(ledger, mock.url)
  try {
    const on = (p: GatewayProcess) => new OpenAI({ baseURL: `${p.url}/v1`, apiKey: KEY, maxRetries: 0 })
    const t1 = await on(a).responses.create({ model: 'claude-sonnet-4-5', input: 'My name is Ada.', instructions: 'Answer briefly.' })
    const t2 = await on(b).responses.create({ model: 'claude-sonnet-4-5', input: 'What is my name?', previous_response_id: t1.id })
    const t3 = await on(a).responses.create({ model: 'claude-sonnet-4-5', input: 'Thank you.', previous_response_id: t2.id, stream: true })
    let t3Text = ''
    let t3Id = ''
    for await (const ev of t3) {
      if (ev.type === 'response.output_text.delta') t3Text += ev.delta
      if (ev.type === 'response.completed') t3Id = ev.response.id
    }
    assert.notEqual(t1.id, t2.id)
    assert.equal(t2.previous_response_id, t1.id)

    const sent = mock.exchanges.filter((e) => e.url.startsWith('/v1/messages')).map((e) => JSON.parse(e.body) as { system?: unknown; messages: SentMessage[] })
    assert.equal(sent.length, 3)
    // Turn 3, served by process A after process B served turn 2, carried the whole conversation.
    const last = sent[2]!.messages
    assert.deepEqual(last.map((m) => m.role), ['user', 'assistant', 'user', 'assistant', 'user'])
    assert.deepEqual(last.map(textOf), ['My name is Ada.', t1.output_text, 'What is my name?', t2.output_text, 'Thank you.'])
    assert.deepEqual(sent[1]!.messages.map(textOf), ['My name is Ada.', t1.output_text, 'What is my name?'])
    // instructions belong to the response that gave them (as at OpenAI): not carried to the follow-ups.
    assert.ok(sent[0]!.system !== undefined)
    assert.equal(sent[1]!.system, undefined)

    // Either process reads any turn of the conversation (GET, input_items): the state is in the shared database.
    const got = await on(b).responses.retrieve(t3Id)
    assert.equal(got.output_text, t3Text)
    const items = await on(b).responses.inputItems.list(t3Id, { order: 'asc' })
    assert.deepEqual(items.data.map((it) => it.type), ['message', 'message', 'message', 'message', 'message'])
  } finally {
    for (const p of [a, b]) p.child.kill('SIGKILL')
    await Promise.all([a.exited, b.exited])
    await mock.close()
    mock = null
  }
}

describe('a Responses conversation continued by another gateway process', () => {
  it('sharing PostgreSQL', { skip: !pgUp, timeout: 180_000 }, async () => {
    await threeTurnsAcrossProcesses(`{ type: postgres, url: "postgres://postgres@127.0.0.1:5432/test", tablePrefix: ${pgPrefix} }`)
  })

  it('sharing the SQLite ledger file', { timeout: 180_000 }, async () => {
    await threeTurnsAcrossProcesses(`{ type: sqlite, path: ${join(dir, 'shared.db')} }`)
  })
})
