import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import OpenAI from 'openai'
import { SLUICE_KEY, startLedgeredGateway } from './helpers/providers.ts'
import { startRecordingMock } from './helpers/recording-mock.ts'

/**
 * What Codex 0.171 really sends (test/fixtures/codex/, captured against a loopback server) replayed through Sluice
 * with the openai SDK, one Codex specific at a time, each against the rule docs/translation.md gives it.
 */

interface Capture { headers: Record<string, string>; body: Record<string, any> }
const capture = (n: 1 | 2): Capture => JSON.parse(readFileSync(new URL(`./fixtures/codex/turn-${n}-request.json`, import.meta.url), 'utf8')) as Capture

/** The fixture's own figures: what the rules below are about is really in them (a changed capture fails here). */
test('the captures hold the Codex specifics', () => {
  for (const n of [1, 2] as const) {
    const { body } = capture(n)
    assert.equal(body.store, false)
    assert.deepEqual(body.include, ['reasoning.encrypted_content'])
    assert.match(body.prompt_cache_key, /^[0-9a-f-]{36}$/)
    assert.ok(body.tools.some((t: any) => t.type === 'namespace' && t.tools.length > 0))
    assert.ok(body.tools.some((t: any) => t.type === 'web_search'))
    assert.ok(body.tools.some((t: any) => t.type === 'function' && t.name === 'exec_command'))
  }
  const turn2 = capture(2).body.input as any[]
  assert.deepEqual(turn2.slice(-3).map((i) => i.type), ['reasoning', 'function_call', 'function_call_output'])
  assert.equal(turn2.at(-3).encrypted_content, 'gAAAAABmockEncryptedReasoningBlob==')
})

test('OpenAI backend (same schema): every Codex specific goes up unchanged, nothing omitted, each turn in the ledger', { timeout: 30_000 }, async () => {
  const mock = await startRecordingMock()
  const tg = await startLedgeredGateway(`
backends:
  - { id: openai-mock, type: openai, url: ${mock.url}/v1, auth: { apiKey: sk-upstream-openai } }
models:
  - { name: gpt-5.4, target: openai-mock }
consumers:
  - { id: coder, keys: [ { value: ${SLUICE_KEY} } ] }
`)
  try {
    const client = new OpenAI({ baseURL: `${tg.url}/v1`, apiKey: SLUICE_KEY, maxRetries: 0 })
    for (const n of [1, 2] as const) {
      const { body } = capture(n)
      const { data: stream, response } = await client.responses.create(body as any).withResponse()
      let completed: OpenAI.Responses.Response | undefined
      for await (const ev of stream as unknown as AsyncIterable<OpenAI.Responses.ResponseStreamEvent>) if (ev.type === 'response.completed') completed = ev.response
      assert.ok(completed, `turn ${n} completed`)
      assert.equal(response.headers.get('x-sluice-omitted'), null)
      // The backend got Codex's body as Codex wrote it: namespaces, web_search, include, prompt_cache_key, store.
      assert.deepEqual(JSON.parse(mock.last().body), body)
    }
    const rows = [...(await tg.rows()).values()]
    assert.equal(rows.length, 2)
    for (const r of rows) assert.ok(r.status === 200 && r.promptTokens > 0 && r.completionTokens > 0, JSON.stringify(r))
  } finally {
    await tg.close()
    await mock.close()
  }
})
