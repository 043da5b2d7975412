import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfigText } from '../src/config/load.ts'
import { builtinPolicies } from '../src/policies/registry.ts'
import { makeRedactor } from '../src/policies/log-messages/redact.ts'
import type { MessageRecord } from '../src/stores/ledger.ts'
import { startTestGateway, type TestGateway } from './helpers/gateway.ts'

const KEY_A = 'sk-log-messages-team-a'
const KEY_B = 'sk-log-messages-team-b'
const KEY_C = 'sk-log-messages-team-c'

describe('redaction rules', () => {
  const redact = makeRedactor(['ORDER-\\d{6}'])
  const cases: [string, string][] = [
    ['my key is sk-proj-AbCdEf0123456789XyZ_abcdef ok', 'my key is [REDACTED:api-key] ok'],
    ['anthropic sk-ant-api03-abcdefghijklmnopQRST', 'anthropic [REDACTED:api-key]'],
    ['aws AKIAIOSFODNN7EXAMPLE here', 'aws [REDACTED:api-key] here'],
    ['gh ghp_abcdefghijklmnopqrstuvwxyz0123456789 done', 'gh [REDACTED:api-key] done'],
    ['Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig', 'Authorization: Bearer [REDACTED:bearer]'],
    ['write to jane.doe+ai@example.co.uk please', 'write to [REDACTED:email] please'],
    ['card 4111 1111 1111 1111 exp 12/29', 'card [REDACTED:card] exp 12/29'],
    ['card 4242-4242-4242-4242.', 'card [REDACTED:card].'],
    ['api_key=abcdef123456 and password: "hunter2hunter2"', 'api_key=[REDACTED:secret] and password: "[REDACTED:secret]"'],
    ['ticket ORDER-123456 shipped', 'ticket [REDACTED:custom] shipped'],
    // Not secrets: a long number failing the Luhn check, a short sk- word, a plain sentence.
    ['invoice 1234567890123 stays', 'invoice 1234567890123 stays'],
    ['a task-list of sk-items', 'a task-list of sk-items'],
  ]
  for (const [input, want] of cases) it(`redacts: ${input}`, () => assert.equal(redact(input), want))

  it('can run configured patterns alone', () => {
    assert.equal(makeRedactor(['secret-\\w+'], false)('mail a@b.io secret-thing'), 'mail a@b.io [REDACTED:custom]')
  })

  it('rejects an invalid pattern at config load', () => {
    const res = loadConfigText('ledger: { type: none }\npolicies:\n  - log-messages: { redact: ["(unclosed"] }\n', { registry: builtinPolicies(), env: {} })
    assert.equal(res.ok, false)
    if (!res.ok) assert.match(res.problems.map((p) => p.message).join('\n'), /invalid regular expression/)
  })
})

describe('log-messages policy through the gateway', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-log-messages-'))
  let tg: TestGateway
  before(async () => {
    tg = await startTestGateway(`
ledger: { type: sqlite, path: ${join(dir, 'ledger.db')}, flushInterval: 20ms }
backends:
  - { id: m, type: mock }
models:
  - { name: gpt-4o-mini, target: m }
products:
  - id: logged
    policies:
      - log-messages: { maxChars: 60, redact: ["ORDER-\\\\d{6}"] }
  - id: quiet
  - id: sampled-out
    policies:
      - log-messages: { sample: 0 }
consumers:
  - { id: team-a, product: logged, keys: [ { value: ${KEY_A} } ] }
  - { id: team-b, product: quiet, keys: [ { value: ${KEY_B} } ] }
  - { id: team-c, product: sampled-out, keys: [ { value: ${KEY_C} } ] }
  - { id: vip, product: quiet, keys: [ { value: sk-log-messages-vip } ] }
policies:
  - log-messages: { when: 'consumer.id == "vip"', completions: false }
`)
  })
  after(async () => {
    await tg?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const send = async (key: string, id: string, content: string, stream = false) => {
    const res = await fetch(`${tg.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'x-request-id': id },
      body: JSON.stringify({ model: 'gpt-4o-mini', stream, messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content }] }),
    })
    assert.equal(res.status, 200)
    return res.text()
  }
  const logs = async (): Promise<Map<string, MessageRecord>> => {
    assert.equal(await tg.gw.ledger!.flush(10_000), true)
    return new Map((await tg.gw.ledger!.store.messages()).map((m) => [m.requestId, m]))
  }

  it('logs the product\'s prompts and completions, redacted before they are stored, capped per message', async () => {
    const secret = 'sk-proj-ZZZZZZZZZZZZZZZZZZZZ1234'
    await send(KEY_A, 'lm-1', `key ${secret}, mail bob@example.com, card 4111111111111111, ORDER-654321`)
    await send(KEY_A, 'lm-2', 'x'.repeat(500), true)
    const m = await logs()
    const one = m.get('lm-1')!
    assert.ok(one, 'logged')
    assert.equal(one.consumer, 'team-a')
    assert.equal(one.product, 'logged')
    assert.equal(one.model, 'gpt-4o-mini')
    const prompt = JSON.parse(one.prompt!) as { role: string; content: string }[]
    assert.deepEqual(prompt[0], { role: 'system', content: 'be brief' })
    assert.equal(prompt[1]!.content, 'key [REDACTED:api-key], mail [REDACTED:email], card [REDACTE')
    assert.equal(one.truncated, true)
    assert.ok(!one.prompt!.includes(secret) && !one.prompt!.includes('bob@example.com') && !one.prompt!.includes('4111111111111111'))
    assert.equal(typeof one.completion, 'string')
    assert.ok(one.completion!.length > 0 && one.completion!.length <= 60)

    const two = m.get('lm-2')!
    assert.equal((JSON.parse(two.prompt!) as { content: string }[])[1]!.content, 'x'.repeat(60))
    assert.equal(two.truncated, true)
    assert.ok(two.completion && two.completion.length > 0, 'streamed completion text logged')
  })

  it('logs nothing for products without the policy, or sampled out', async () => {
    await send(KEY_B, 'lm-3', 'not logged')
    await send(KEY_C, 'lm-4', 'sampled out')
    const m = await logs()
    assert.equal(m.has('lm-3'), false)
    assert.equal(m.has('lm-4'), false)
    // The usage ledger still has their rows: message logging is separate.
    const rows = await tg.gw.ledger!.store.records({ requestIds: ['lm-3', 'lm-4'] })
    assert.equal(rows.length, 2)
  })

  it('logs by a CEL condition from the global scope, prompts only when completions are off', async () => {
    await send('sk-log-messages-vip', 'lm-5', 'vip asks, mail vip@corp.example')
    const m = await logs()
    const v = m.get('lm-5')!
    assert.ok(v, 'logged by the global condition')
    assert.equal(v.completion, null)
    assert.match(v.prompt!, /vip asks, mail \[REDACTED:email\]/)
  })
})
