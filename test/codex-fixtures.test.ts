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

/** Sends a captured body through Sluice with the openai SDK; the stream's completed response and the answer's headers. */
async function replay(client: OpenAI, body: Record<string, any>): Promise<{ completed: OpenAI.Responses.Response; omitted: string[] }> {
  const { data: stream, response } = await client.responses.create(body as any).withResponse()
  let completed: OpenAI.Responses.Response | undefined
  for await (const ev of stream as unknown as AsyncIterable<OpenAI.Responses.ResponseStreamEvent>) if (ev.type === 'response.completed') completed = ev.response
  assert.ok(completed, 'the stream completed')
  return { completed, omitted: (response.headers.get('x-sluice-omitted') ?? '').split(',').filter(Boolean) }
}

test('Anthropic backend (translated): each Codex specific by its documented rule, the task still answered, each turn in the ledger', { timeout: 30_000 }, async () => {
  const mock = await startRecordingMock()
  const tg = await startLedgeredGateway(`
backends:
  - { id: anthropic-mock, type: anthropic, url: ${mock.url}, auth: { apiKey: sk-ant-upstream }, models: { gpt-5.4: claude-sonnet-4-5 } }
models:
  - { name: gpt-5.4, target: anthropic-mock }
consumers:
  - { id: coder, keys: [ { value: ${SLUICE_KEY} } ] }
`)
  try {
    const client = new OpenAI({ baseURL: `${tg.url}/v1`, apiKey: SLUICE_KEY, maxRetries: 0 })
    const one = capture(1).body
    const webSearchAt = (one.tools as any[]).findIndex((t) => t.type === 'web_search')
    const first = await replay(client, one)
    const up1 = JSON.parse(mock.last().body) as Record<string, any>
    // namespace: flattened, `ns__fn` for each member, beside the plain function tools.
    const ns = (one.tools as any[]).find((t) => t.type === 'namespace')
    const names = (up1.tools as any[]).map((t) => t.name)
    for (const inner of ns.tools) assert.ok(names.includes(`${ns.name}__${inner.name}`), `${ns.name}__${inner.name} in ${names.join(',')}`)
    assert.ok(names.includes('exec_command'))
    // web_search: a hosted tool only OpenAI runs, omitted and listed by its place.
    assert.ok(!(up1.tools as any[]).some((t) => /web_search/.test(`${t.type} ${t.name}`)))
    assert.ok(first.omitted.includes(`tools[${webSearchAt}]`), first.omitted.join(','))
    assert.equal(up1.tools.length, (one.tools as any[]).reduce((n, t) => n + (t.type === 'namespace' ? t.tools.length : t.type === 'function' ? 1 : 0), 0))
    // include: reasoning.encrypted_content is honoured (not listed as omitted), prompt_cache_key is a hint
    // Anthropic has no notion of (safe omission, listed); neither reached the backend.
    assert.ok(!first.omitted.some((o) => o.startsWith('include')), first.omitted.join(','))
    assert.ok(first.omitted.includes('prompt_cache_key'), first.omitted.join(','))
    // client_metadata (Codex's turn telemetry) is a hint no backend answers by: a listed safe omission too.
    assert.ok(first.omitted.includes('client_metadata'), first.omitted.join(','))
    assert.equal(up1.client_metadata, undefined)
    assert.equal(up1.prompt_cache_key, undefined)
    assert.equal(up1.include, undefined)
    assert.equal(up1.store, undefined)
    // store: false: the gateway keeps nothing, so the response cannot be fetched...
    const fetched = await fetch(`${tg.url}/v1/responses/${first.completed.id}`, { headers: { authorization: `Bearer ${SLUICE_KEY}` } })
    assert.equal(fetched.status, 404)
    assert.equal(((await fetched.json()) as { error: { param: string } }).error.param, 'response_id')

    // Turn 2: OpenAI's encrypted reasoning cannot go to Anthropic: omitted and listed by its place; the call and
    // its output go up as tool_use and tool_result.
    const two = capture(2).body
    const reasoningAt = (two.input as any[]).findIndex((i) => i.type === 'reasoning')
    const second = await replay(client, two)
    assert.ok(second.omitted.includes(`input[${reasoningAt}].encrypted_content`), second.omitted.join(','))
    const up2 = JSON.parse(mock.last().body) as { messages: Array<{ role: string; content: any }> }
    assert.doesNotMatch(mock.last().body, /gAAAAABmockEncryptedReasoningBlob/)
    const blocks = up2.messages.flatMap((m) => (Array.isArray(m.content) ? m.content : []))
    const use = blocks.find((b: any) => b.type === 'tool_use')
    assert.deepEqual({ name: use.name, input: use.input }, { name: 'exec_command', input: { cmd: 'cat answer.txt' } })
    const result = blocks.find((b: any) => b.type === 'tool_result')
    assert.equal(result.tool_use_id, use.id)
    assert.match(JSON.stringify(result.content), /4217/)
    assert.equal(second.completed.status, 'completed')

    // ...and the same body with store left to its default (true) is kept: the pair that makes the 404 mean something.
    const { store: _drop, ...stored } = one
    const kept = await replay(client, stored)
    const got = await fetch(`${tg.url}/v1/responses/${kept.completed.id}`, { headers: { authorization: `Bearer ${SLUICE_KEY}` } })
    assert.equal(got.status, 200)

    const rows = [...(await tg.rows()).values()]
    assert.equal(rows.length, 3)
    for (const r of rows) assert.ok(r.status === 200 && r.backend === 'anthropic-mock' && r.promptTokens > 0 && r.completionTokens > 0, JSON.stringify(r))
  } finally {
    await tg.close()
    await mock.close()
  }
})
