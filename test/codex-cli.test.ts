import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SLUICE_KEY, startLedgeredGateway } from './helpers/providers.ts'
import { CODEX, runCodex, type CodexRun } from './helpers/codex.ts'
import { startRecordingMock, type Exchange, type RecordingMock } from './helpers/recording-mock.ts'

/**
 * Codex CLI (@openai/codex 0.171, the native binary) pointed at Sluice by a model provider with
 * `wire_api = "responses"` and a Sluice key. The prompt carries the mock's marker, so the mock's first answer is
 * an `exec_command` call (Codex's shell tool) running `cat answer.txt`; Codex runs it in the workspace and sends
 * the output back as a `function_call_output`; the mock (x-mock-tool-echo, set on the backend) answers by quoting
 * that output, which ends the task. What Codex sends on the way is what it always sends (captured in
 * test/fixtures/codex/): namespace tool groups, the hosted web_search tool, include of encrypted reasoning,
 * prompt_cache_key, store: false. Nothing leaves loopback: the helper's tripwire proxy sees every attempt.
 */

const SECRET = '4217'
const MARKER = `[[mock-tool:exec_command {"cmd":"cat answer.txt"}]]`
const PROMPT = `Run \`cat answer.txt\` and tell me the number it holds. ${MARKER}`
const skip = !existsSync(CODEX) && 'codex binary not installed'

/** The `usage` of the terminal event of a recorded Responses stream (response.completed). */
function responsesUsageOf(ex: Exchange): { input_tokens: number; output_tokens: number; input_tokens_details?: { cached_tokens?: number }; output_tokens_details?: { reasoning_tokens?: number } } {
  for (const block of ex.response.split('\n\n')) {
    const data = block.split('\n').find((l) => l.startsWith('data: '))
    if (!data) continue
    const j = JSON.parse(data.slice(6)) as { type: string; response?: { usage?: any } }
    if (j.type === 'response.completed' && j.response?.usage) return j.response.usage
  }
  throw new Error(`no response.completed usage in the recorded stream: ${ex.response.slice(0, 300)}`)
}

/** The `usage` of a recorded Anthropic stream: message_start's input figures plus message_delta's output. */
function anthropicUsageOf(ex: Exchange): { input_tokens: number; output_tokens: number; cache_read_input_tokens: number; cache_creation_input_tokens: number } {
  let start: any
  let delta: any
  for (const block of ex.response.split('\n\n')) {
    const data = block.split('\n').find((l) => l.startsWith('data: '))
    if (!data) continue
    const j = JSON.parse(data.slice(6)) as { type: string; message?: { usage?: any }; usage?: any }
    if (j.type === 'message_start') start = j.message?.usage
    if (j.type === 'message_delta') delta = j.usage
  }
  if (!start || !delta) throw new Error(`no usage in the recorded Anthropic stream: ${ex.response.slice(0, 300)}`)
  return { ...start, ...delta }
}

/** Runs the task in a fresh workspace holding answer.txt, and checks what every backend-neutral part proves. */
async function runTask(baseUrl: string, config: readonly string[] = []): Promise<CodexRun> {
  const home = mkdtempSync(join(tmpdir(), 'sluice-codex-home-'))
  const work = mkdtempSync(join(tmpdir(), 'sluice-codex-work-'))
  try {
    writeFileSync(join(work, 'answer.txt'), `${SECRET}\n`)
    const run = await runCodex({ prompt: PROMPT, cwd: work, home, baseUrl, apiKey: SLUICE_KEY, model: 'gpt-5.4', timeoutMs: 90_000, config })
    assert.equal(run.code, 0, `codex failed: ${run.err.slice(-1500)}\n${run.out.slice(-1500)}`)
    assert.deepEqual(run.egress, [], 'Codex tried to reach a non-loopback address')
    // The tool really ran, in the workspace, and printed the file.
    const commands = run.events.filter((e) => e.type === 'item.completed' && e.item?.type === 'command_execution')
    assert.equal(commands.length, 1, run.out)
    assert.match(commands[0]!.item!.command!, /cat answer\.txt/)
    assert.equal(commands[0]!.item!.exit_code, 0)
    assert.equal(commands[0]!.item!.aggregated_output, `${SECRET}\n`)
    // The task completed, and the final message carries the file's content (it made the round trip via the model).
    assert.ok(run.events.some((e) => e.type === 'turn.completed'), run.out)
    assert.ok(!run.events.some((e) => e.type === 'turn.failed' || e.type === 'error'), run.out)
    assert.match(run.lastMessage, new RegExp(`\\b${SECRET}\\b`))
    return run
  } finally {
    rmSync(home, { recursive: true, force: true })
    rmSync(work, { recursive: true, force: true })
  }
}

/** The ledger rows of the run equal, turn by turn, what the backend reported; and Codex saw the same sum. */
function assertLedger(rows: { status: number; consumer: string | null; backend: string | null; model: string | null; promptTokens: number; completionTokens: number; cachedTokens: number; stream: boolean }[], reported: { p: number; c: number; cached: number }[], run: CodexRun, backend: string): void {
  assert.equal(rows.length, reported.length)
  assert.ok(rows.length >= 2, 'a tool call turn and a final turn')
  for (const r of rows) {
    assert.deepEqual({ status: r.status, consumer: r.consumer, backend: r.backend, model: r.model, stream: r.stream }, { status: 200, consumer: 'coder', backend, model: 'gpt-5.4', stream: true })
    assert.ok(r.promptTokens > 0 && r.completionTokens > 0, `every turn has usage: ${JSON.stringify(r)}`)
  }
  const order = (a: { p: number; c: number }, b: { p: number; c: number }) => a.p - b.p || a.c - b.c
  assert.deepEqual(rows.map((r) => ({ p: r.promptTokens, c: r.completionTokens, cached: r.cachedTokens })).sort(order), [...reported].sort(order))
  // Codex's own account of the turn (turn.completed usage) is the sum of what the backend reported.
  const usage = run.events.find((e) => e.type === 'turn.completed')!.usage!
  assert.equal(usage.input_tokens, reported.reduce((n, r) => n + r.p, 0))
  assert.equal(usage.output_tokens, reported.reduce((n, r) => n + r.c, 0))
  assert.equal(usage.cached_input_tokens, reported.reduce((n, r) => n + r.cached, 0))
}

/** GET /admin/usage?by=consumer: the consumer's requests and tokens are the turns the backend reported. */
async function assertUsageReport(adminUrl: string, reported: { p: number; c: number }[]): Promise<void> {
  const res = await fetch(`${adminUrl}/admin/usage?by=consumer`)
  assert.equal(res.status, 200)
  const { rows } = (await res.json()) as { rows: { key: string; requests: number; promptTokens: number; completionTokens: number; errors: number }[] }
  const coder = rows.find((r) => r.key === 'coder')
  assert.deepEqual(coder && { requests: coder.requests, promptTokens: coder.promptTokens, completionTokens: coder.completionTokens, errors: coder.errors }, {
    requests: reported.length,
    promptTokens: reported.reduce((n, r) => n + r.p, 0),
    completionTokens: reported.reduce((n, r) => n + r.c, 0),
    errors: 0,
  })
}

test('Codex completes a shell-tool task through Sluice served by the mock speaking OpenAI (Responses passthrough)', { skip, timeout: 150_000 }, async () => {
  const mock: RecordingMock = await startRecordingMock()
  const tg = await startLedgeredGateway(`
backends:
  - id: openai-mock
    type: openai
    url: ${mock.url}/v1
    auth: { apiKey: sk-upstream-openai-codex }
    headers: { x-mock-tool-echo: 'true', x-mock-cached-tokens: '64' }
models:
  - { name: gpt-5.4, target: openai-mock }
consumers:
  - { id: coder, keys: [ { value: ${SLUICE_KEY} } ] }
`)
  try {
    const run = await runTask(`${tg.url}/v1`)
    // Every call reached the backend as a Responses request with the backend's key, never the Sluice key.
    assert.ok(mock.exchanges.length >= 2)
    for (const e of mock.exchanges) {
      assert.deepEqual({ method: e.method, url: e.url, status: e.status }, { method: 'POST', url: '/v1/responses', status: 200 })
      assert.equal(e.headers.authorization, 'Bearer sk-upstream-openai-codex')
      assert.doesNotMatch(JSON.stringify(e.headers), new RegExp(SLUICE_KEY))
    }
    // Codex's specifics went up unchanged (same schema: no translation, nothing omitted).
    const first = JSON.parse(mock.exchanges[0]!.body) as Record<string, any>
    assert.equal(first.store, false)
    assert.deepEqual(first.include, ['reasoning.encrypted_content'])
    assert.equal(typeof first.prompt_cache_key, 'string')
    assert.ok(first.tools.some((t: any) => t.type === 'namespace' && Array.isArray(t.tools)))
    assert.ok(first.tools.some((t: any) => t.type === 'web_search'))
    // The second turn carries the call and its output back.
    const second = JSON.parse(mock.exchanges[1]!.body) as Record<string, any>
    const output = second.input.find((i: any) => i.type === 'function_call_output')
    assert.match(output.output, new RegExp(SECRET))

    const reported = mock.exchanges.map(responsesUsageOf).map((u) => ({ p: u.input_tokens, c: u.output_tokens, cached: u.input_tokens_details?.cached_tokens ?? 0 }))
    assert.deepEqual(reported.map((r) => r.cached), reported.map(() => 64)) // cache reads, as a prompt_cache_key would get them
    assertLedger([...(await tg.rows()).values()], reported, run, 'openai-mock')
    await assertUsageReport(tg.adminUrl, reported)
  } finally {
    await tg.close()
    await mock.close()
  }
})

/** A gateway whose gpt-5.4 is the mock speaking Anthropic (as claude-sonnet-4-5), echoing tool results. */
const anthropicGatewayYaml = (mockUrl: string) => `
backends:
  - id: anthropic-mock
    type: anthropic
    url: ${mockUrl}
    auth: { apiKey: sk-ant-upstream-codex }
    headers: { x-mock-tool-echo: 'true' }
    models: { gpt-5.4: claude-sonnet-4-5 }
models:
  - { name: gpt-5.4, target: anthropic-mock }
consumers:
  - { id: coder, keys: [ { value: ${SLUICE_KEY} } ] }
`

test('Codex completes a shell-tool task through Sluice served by the mock speaking Anthropic (Responses translated)', { skip, timeout: 150_000 }, async () => {
  const mock: RecordingMock = await startRecordingMock()
  const tg = await startLedgeredGateway(anthropicGatewayYaml(mock.url))
  try {
    const run = await runTask(`${tg.url}/v1`)
    // Every turn reached the backend as an Anthropic Messages stream with the backend's key.
    assert.ok(mock.exchanges.length >= 2)
    for (const e of mock.exchanges) {
      assert.deepEqual({ method: e.method, url: e.url.split('?')[0], status: e.status }, { method: 'POST', url: '/v1/messages', status: 200 })
      assert.equal(e.headers['x-api-key'], 'sk-ant-upstream-codex')
      assert.doesNotMatch(JSON.stringify(e.headers), new RegExp(SLUICE_KEY))
    }
    const first = JSON.parse(mock.exchanges[0]!.body) as Record<string, any>
    assert.equal(first.model, 'claude-sonnet-4-5')
    assert.equal(first.prompt_cache_key, undefined) // a hint Anthropic has no notion of: safely omitted
    const names = (first.tools as any[]).map((t) => t.name)
    // Codex's shell tool went up under its own name; the namespace group flattened to ns__fn; web_search omitted.
    assert.ok(names.includes('exec_command'))
    assert.ok(names.includes('multi_agent_v1__spawn_agent'), names.join(','))
    assert.ok(!(first.tools as any[]).some((t) => /web_search/.test(String(t.type ?? t.name))))
    // The tool output went back as a tool_result for exec_command's call.
    const second = JSON.parse(mock.exchanges[1]!.body) as { messages: Array<{ role: string; content: any }> }
    const results = second.messages.flatMap((m) => (Array.isArray(m.content) ? m.content : [])).filter((b: any) => b.type === 'tool_result')
    assert.match(JSON.stringify(results.at(-1)), new RegExp(SECRET))

    const reported = mock.exchanges.map(anthropicUsageOf).map((u) => ({
      p: u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens,
      c: u.output_tokens,
      cached: u.cache_read_input_tokens,
    }))
    assertLedger([...(await tg.rows()).values()], reported, run, 'anthropic-mock')
    await assertUsageReport(tg.adminUrl, reported)
  } finally {
    await tg.close()
    await mock.close()
  }
})

/** The `usage` of a recorded chat completions stream (its last chunk with usage). */
function chatUsageOf(ex: Exchange): { prompt_tokens: number; completion_tokens: number; prompt_tokens_details?: { cached_tokens?: number } } {
  let usage: any
  for (const block of ex.response.split('\n\n')) {
    if (!block.startsWith('data: {')) continue
    const j = JSON.parse(block.slice(6)) as { usage?: any }
    if (j.usage) usage = j.usage
  }
  if (!usage) throw new Error(`no usage in the recorded chat stream: ${ex.response.slice(0, 300)}`)
  return usage
}

test('Codex completes a shell-tool task through Sluice served by a chat-only OpenAI-compatible backend (Responses translated to chat)', { skip, timeout: 150_000 }, async () => {
  const mock: RecordingMock = await startRecordingMock()
  const tg = await startLedgeredGateway(`
backends:
  - id: chat-mock
    type: openai-compatible
    responses: translate
    url: ${mock.url}/v1
    auth: { apiKey: sk-upstream-chat-codex }
    headers: { x-mock-tool-echo: 'true' }
    models: { gpt-5.4: gpt-4o-mini }
models:
  - { name: gpt-5.4, target: chat-mock }
consumers:
  - { id: coder, keys: [ { value: ${SLUICE_KEY} } ] }
`)
  try {
    const run = await runTask(`${tg.url}/v1`)
    assert.ok(mock.exchanges.length >= 2)
    for (const e of mock.exchanges) {
      assert.deepEqual({ method: e.method, url: e.url, status: e.status }, { method: 'POST', url: '/v1/chat/completions', status: 200 })
      assert.equal(e.headers.authorization, 'Bearer sk-upstream-chat-codex')
    }
    const first = JSON.parse(mock.exchanges[0]!.body) as Record<string, any>
    assert.equal(first.model, 'gpt-4o-mini')
    // prompt_cache_key is kept for an OpenAI-compatible backend (Codex's session id); store/include are the gateway's.
    assert.match(first.prompt_cache_key, /^[0-9a-f-]{36}$/)
    assert.equal(first.store, undefined)
    assert.equal(first.include, undefined)
    const names = (first.tools as any[]).map((t) => t.function.name)
    assert.ok(names.includes('exec_command') && names.includes('multi_agent_v1__spawn_agent'), names.join(','))
    assert.ok(!(first.tools as any[]).some((t) => t.type !== 'function'))
    const second = JSON.parse(mock.exchanges[1]!.body) as { messages: Array<{ role: string; content: any }> }
    assert.match(JSON.stringify(second.messages.filter((m) => m.role === 'tool').at(-1)), new RegExp(SECRET))

    const reported = mock.exchanges.map(chatUsageOf).map((u) => ({ p: u.prompt_tokens, c: u.completion_tokens, cached: u.prompt_tokens_details?.cached_tokens ?? 0 }))
    assertLedger([...(await tg.rows()).values()], reported, run, 'chat-mock')
    await assertUsageReport(tg.adminUrl, reported)
  } finally {
    await tg.close()
    await mock.close()
  }
})

/** The thinking block (text and signature) a recorded Anthropic stream carried. */
function thinkingOf(ex: Exchange): { thinking: string; signature: string } {
  let thinking = ''
  let signature = ''
  for (const block of ex.response.split('\n\n')) {
    const data = block.split('\n').find((l) => l.startsWith('data: '))
    if (!data) continue
    const j = JSON.parse(data.slice(6)) as { type: string; delta?: { type: string; thinking?: string; signature?: string } }
    if (j.type !== 'content_block_delta') continue
    if (j.delta?.type === 'thinking_delta') thinking += j.delta.thinking
    if (j.delta?.type === 'signature_delta') signature += j.delta.signature
  }
  return { thinking, signature }
}

test('Codex with reasoning through an Anthropic backend: the signed thinking goes out as encrypted reasoning and comes back to Anthropic unchanged', { skip, timeout: 150_000 }, async () => {
  const mock: RecordingMock = await startRecordingMock()
  const tg = await startLedgeredGateway(anthropicGatewayYaml(mock.url))
  try {
    const run = await runTask(`${tg.url}/v1`, ['model_reasoning_effort = "high"'])
    assert.ok(mock.exchanges.length >= 2)
    const first = JSON.parse(mock.exchanges[0]!.body) as Record<string, any>
    assert.equal(first.thinking?.type, 'enabled', 'Codex\'s reasoning effort reached Anthropic as extended thinking')
    // The first answer's thinking (signed by the mock), as Anthropic sent it...
    const signed = thinkingOf(mock.exchanges[0]!)
    assert.ok(signed.thinking.length > 0 && signed.signature.length > 0)
    // ...went to Codex as a reasoning item whose encrypted_content Codex cannot read, and Codex sent it back: the
    // second request gives Anthropic the very block, first in the assistant turn with the tool call (the mock
    // refuses a thinking block whose signature is not its own with a 400, which would have failed the task).
    const second = JSON.parse(mock.exchanges[1]!.body) as { messages: Array<{ role: string; content: any }> }
    const assistant = second.messages.find((m) => m.role === 'assistant' && Array.isArray(m.content) && m.content.some((b: any) => b.type === 'tool_use'))!
    assert.deepEqual(assistant.content[0], { type: 'thinking', thinking: signed.thinking, signature: signed.signature })
    assert.equal(assistant.content.at(-1).type, 'tool_use')
    const reported = mock.exchanges.map(anthropicUsageOf).map((u) => ({ p: u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens, c: u.output_tokens, cached: u.cache_read_input_tokens }))
    assertLedger([...(await tg.rows()).values()], reported, run, 'anthropic-mock')
  } finally {
    await tg.close()
    await mock.close()
  }
})

test('the tripwire is not vacuous: Codex pointed at a host off the machine asks the tripwire, and nothing reaches anywhere', { skip, timeout: 120_000 }, async () => {
  // `.invalid` is reserved (RFC 2606): it never resolves, and through the proxy Codex does not even look it up.
  // The rest is the same run as the tests above, so a Codex that ignored HTTPS_PROXY/HTTP_PROXY would show here.
  const home = mkdtempSync(join(tmpdir(), 'sluice-codex-home-'))
  const work = mkdtempSync(join(tmpdir(), 'sluice-codex-work-'))
  try {
    const run = await runCodex({ prompt: 'Say hello.', cwd: work, home, baseUrl: 'http://sluice-gateway.invalid/v1', apiKey: SLUICE_KEY, model: 'gpt-5.4', timeoutMs: 90_000 })
    assert.notEqual(run.code, 0, 'the turn cannot succeed: the tripwire refuses it')
    assert.ok(run.egress.some((e) => /sluice-gateway\.invalid/.test(e)), `the tripwire saw the attempt: ${run.egress.join(',')}`)
    assert.ok(run.egress.every((e) => !/^127\.0\.0\.1|^localhost/.test(e)), 'loopback never goes through the tripwire')
  } finally {
    rmSync(home, { recursive: true, force: true })
    rmSync(work, { recursive: true, force: true })
  }
})
