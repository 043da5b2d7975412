import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import OpenAI from 'openai'
import { startLedgeredGateway } from './helpers/providers.ts'
import { startRecordingMock, type RecordingMock } from './helpers/recording-mock.ts'
import type { TestGateway } from './helpers/gateway.ts'
import type { UsageRecord } from '../src/stores/ledger.ts'
import { parseProm, sumOf } from './helpers/prom.ts'

// The Responses API through Sluice on every kind of backend, driven by the official openai SDK: translated for
// Anthropic, Gemini, Bedrock and chat-only servers (the gateway keeps the conversation), passed through to
// backends that speak it (the backend keeps it, and follow-ups stick to it).
const KEY_A = 'sk-responses-team-a'
const KEY_B = 'sk-responses-team-b'
const KEY_C = 'sk-responses-team-c'
const ADMIN = 'admin-token-responses'
const STATIC = '{ accessKeyId: AKIDEXAMPLE, secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }'
const WEATHER = { type: 'function' as const, name: 'get_weather', description: 'Weather in a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }, strict: false }

let up: RecordingMock
let natA: RecordingMock
let natB: RecordingMock
let tg: TestGateway & { rows(): Promise<Map<string, UsageRecord>> }
let a: OpenAI
let b: OpenAI

before(async () => {
  ;[up, natA, natB] = await Promise.all([startRecordingMock(), startRecordingMock(), startRecordingMock()])
  tg = await startLedgeredGateway(`
admin: { host: 127.0.0.1, port: 0, token: ${ADMIN} }
policies:
  - token-limit: { counterKey: consumer.id, tokensPerMinute: 1000000 }
backends:
  - { id: claude, type: anthropic, url: ${up.url}, auth: { apiKey: sk-ant-responses } }
  - { id: gem, type: gemini, url: ${up.url}, auth: { apiKey: AIza-responses }, headers: { x-mock-completion-tokens: '7' } }
  - { id: bed, type: bedrock, region: eu-west-1, url: ${up.url}, auth: { awsSigV4: ${STATIC} }, models: { nova: us.amazon.nova-pro-v1:0 }, headers: { x-mock-completion-tokens: '6' } }
  - { id: chat, type: openai-compatible, url: ${up.url}/v1, responses: translate, headers: { x-mock-cached-tokens: '3', x-mock-completion-tokens: '5' } }
  - { id: nat-a, type: openai-compatible, url: ${natA.url}/v1 }
  - { id: nat-b, type: openai-compatible, url: ${natB.url}/v1 }
pools:
  - { id: natives, strategy: round-robin, members: [ { backend: nat-a }, { backend: nat-b } ] }
models:
  - { name: claude-sonnet-4-5, target: claude }
  - { name: gemini-2.5-flash, target: gem }
  - { name: nova, target: bed }
  - { name: small-chat, target: chat }
  - { name: gpt-4o, target: natives }
consumers:
  - { id: team-a, keys: [ { value: ${KEY_A} } ] }
  - { id: team-b, keys: [ { value: ${KEY_B} } ] }
  - { id: team-c, keys: [ { value: ${KEY_C} } ] }
`)
  a = new OpenAI({ baseURL: `${tg.url}/v1`, apiKey: KEY_A, maxRetries: 0 })
  b = new OpenAI({ baseURL: `${tg.url}/v1`, apiKey: KEY_B, maxRetries: 0 })
})
after(async () => {
  await tg.close()
  await Promise.all([up.close(), natA.close(), natB.close()])
})

const rid = () => randomUUID()
const sentToAnthropic = () => JSON.parse(up.exchanges.filter((e) => e.url.startsWith('/v1/messages')).at(-1)!.body) as { messages: Array<{ role: string; content: any }>; tools?: Array<{ name: string }> }
const apiError = (p: Promise<unknown>) => p.then(() => { throw new Error('expected an error') }, (e: unknown) => e as InstanceType<typeof OpenAI.APIError>)

describe('Responses on a backend without a Responses API (Anthropic)', () => {
  it('a streamed function call, then its output turn by previous_response_id; both accounted like chat completions', async () => {
    const id1 = rid()
    const stream = await a.responses.create({ model: 'claude-sonnet-4-5', input: 'Weather in Paris? [[mock-tool:get_weather {"city":"Paris"}]]', tools: [WEATHER], stream: true }, { headers: { 'x-request-id': id1 } })
    const events: any[] = []
    for await (const ev of stream) events.push(ev)
    const types = events.map((e) => e.type)
    const deltas = types.filter((t) => t === 'response.function_call_arguments.delta').length
    assert.ok(deltas >= 1)
    assert.deepEqual(types, ['response.created', 'response.in_progress', 'response.output_item.added', ...Array(deltas).fill('response.function_call_arguments.delta'),
      'response.function_call_arguments.done', 'response.output_item.done', 'response.completed'])
    assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i))
    const done = events.find((e) => e.type === 'response.output_item.done').item
    assert.equal(done.type, 'function_call')
    assert.equal(done.name, 'get_weather')
    assert.deepEqual(JSON.parse(done.arguments), { city: 'Paris' })
    assert.equal(events.filter((e) => e.type === 'response.function_call_arguments.delta').map((e) => e.delta).join(''), done.arguments)
    const completed = events.at(-1).response
    assert.equal(completed.status, 'completed')
    assert.equal(completed.output[0].call_id, done.call_id)

    const id2 = rid()
    const s2 = await a.responses.create({ model: 'claude-sonnet-4-5', previous_response_id: completed.id, tools: [WEATHER], stream: true,
      input: [{ type: 'function_call_output', call_id: done.call_id, output: '18 C and sunny' }] }, { headers: { 'x-request-id': id2 } })
    let text = ''
    let final: any = null
    for await (const ev of s2) {
      if (ev.type === 'response.output_text.delta') text += ev.delta
      if (ev.type === 'response.completed') final = ev.response
    }
    assert.ok(text.length > 0)
    assert.equal(final.output[0].content[0].text, text)
    // What the Anthropic backend got: the question, the call (a tool_use with the client's call id), its result.
    const sent = sentToAnthropic()
    assert.deepEqual(sent.messages.map((m) => m.role), ['user', 'assistant', 'user'])
    assert.deepEqual(sent.messages[1]!.content.map((c: any) => [c.type, c.id, c.name, c.input]), [['tool_use', done.call_id, 'get_weather', { city: 'Paris' }]])
    assert.deepEqual(sent.messages[2]!.content.map((c: any) => [c.type, c.tool_use_id, c.content]), [['tool_result', done.call_id, '18 C and sunny']])

    // The ledger has both turns with the usage the client saw (streams included).
    const rows = await tg.rows()
    for (const [reqId, r] of [[id1, completed], [id2, final]] as const) {
      const row = rows.get(reqId)!
      assert.deepEqual([row.consumer, row.model, row.backend, row.status, row.stream], ['team-a', 'claude-sonnet-4-5', 'claude', 200, true])
      assert.deepEqual([row.promptTokens, row.completionTokens], [r.usage.input_tokens, r.usage.output_tokens])
      assert.ok(row.promptTokens > 0 && row.completionTokens > 0)
    }
  })

  it('store: false leaves nothing stored; a stored response is found and continued', async () => {
    const kept = await a.responses.create({ model: 'claude-sonnet-4-5', input: 'Remember me.' })
    const gone = await a.responses.create({ model: 'claude-sonnet-4-5', input: 'Forget me.', store: false })
    assert.equal((kept as any).store, true)
    assert.equal((gone as any).store, false)
    assert.equal((await a.responses.retrieve(kept.id)).id, kept.id)
    assert.equal((await apiError(a.responses.retrieve(gone.id))).status, 404)
    const next = await a.responses.create({ model: 'claude-sonnet-4-5', input: 'Again.', previous_response_id: kept.id })
    assert.equal(next.previous_response_id, kept.id)
    const refused = await apiError(a.responses.create({ model: 'claude-sonnet-4-5', input: 'Again.', previous_response_id: gone.id }))
    assert.equal(refused.status, 400)
    assert.equal(refused.code, 'previous_response_not_found')
    assert.equal(refused.param, 'previous_response_id')
  })

  it('a deleted response cannot be continued (it could before), nor can the conversation after it', async () => {
    const first = await a.responses.create({ model: 'claude-sonnet-4-5', input: 'One.' })
    const second = await a.responses.create({ model: 'claude-sonnet-4-5', input: 'Two.', previous_response_id: first.id })
    assert.equal(second.status, 'completed')
    const del = await a.responses.delete(first.id).then(() => null, (e) => e)
    assert.equal(del, null)
    assert.equal((await apiError(a.responses.retrieve(first.id))).status, 404)
    const again = await apiError(a.responses.create({ model: 'claude-sonnet-4-5', input: 'Three.', previous_response_id: first.id }))
    assert.deepEqual([again.status, again.code], [400, 'previous_response_not_found'])
    const later = await apiError(a.responses.create({ model: 'claude-sonnet-4-5', input: 'Three.', previous_response_id: second.id }))
    assert.deepEqual([later.status, later.code], [400, 'previous_response_not_found'])
    assert.match(later.message, /earlier response of its conversation .* was deleted or has expired/)
    assert.equal((await apiError(a.responses.delete(first.id))).status, 404)
  })

  it('a response belongs to the consumer that made it: another consumer gets 404 and cannot continue or delete it', async () => {
    const r = await a.responses.create({ model: 'claude-sonnet-4-5', input: 'Mine.' })
    assert.equal((await apiError(b.responses.retrieve(r.id))).status, 404)
    assert.equal((await apiError(b.responses.delete(r.id))).status, 404)
    const cont = await apiError(b.responses.create({ model: 'claude-sonnet-4-5', input: 'Yours?', previous_response_id: r.id }))
    assert.deepEqual([cont.status, cont.code], [400, 'previous_response_not_found'])
    assert.equal((await apiError(b.responses.inputItems.list(r.id))).status, 404)
    // The owner still has it, untouched.
    assert.equal((await a.responses.retrieve(r.id)).output_text, r.output_text)
  })

  it('input_items lists the whole input, newest first by default, paginated', async () => {
    const r1 = await a.responses.create({ model: 'claude-sonnet-4-5', input: [{ role: 'user', content: 'First.' }, { role: 'user', content: 'Second.' }] })
    const r2 = await a.responses.create({ model: 'claude-sonnet-4-5', input: 'Third.', previous_response_id: r1.id })
    const page1 = await a.responses.inputItems.list(r2.id, { limit: 2 })
    const texts = (items: any[]) => items.map((it) => it.content[0].text)
    assert.deepEqual(texts(page1.data), ['Third.', r1.output_text])
    assert.equal(page1.has_more, true)
    const page2 = await a.responses.inputItems.list(r2.id, { limit: 2, after: page1.data[1]!.id })
    assert.deepEqual(texts(page2.data), ['Second.', 'First.'])
    assert.equal(page2.has_more, false)
    const asc = await a.responses.inputItems.list(r2.id, { order: 'asc' })
    assert.deepEqual(texts(asc.data), ['First.', 'Second.', r1.output_text, 'Third.'])
  })

  it('reasoning items: the thinking block and its signature come back as encrypted_content and go back unchanged', async () => {
    const r = await a.responses.create({ model: 'claude-sonnet-4-5', input: 'Think first.', reasoning: { effort: 'low' }, include: ['reasoning.encrypted_content'], store: false, max_output_tokens: 4000 })
    const reasoning = r.output.find((o) => o.type === 'reasoning') as any
    assert.ok(reasoning && typeof reasoning.encrypted_content === 'string' && reasoning.summary[0].text.length > 0)
    const next = await a.responses.create({ model: 'claude-sonnet-4-5', store: false, reasoning: { effort: 'low' }, max_output_tokens: 4000,
      input: [{ role: 'user', content: 'Think first.' }, ...(r.output as any[]), { role: 'user', content: 'Go on.' }] })
    assert.equal(next.status, 'completed')
    const block = sentToAnthropic().messages[1]!.content[0]
    assert.equal(block.type, 'thinking')
    assert.equal(block.thinking, reasoning.summary[0].text)
    // The contrast: a signature that does not match is refused by the backend (so the one above was passed unchanged).
    const blocks = JSON.parse(Buffer.from(reasoning.encrypted_content.slice('sluice1.'.length), 'base64url').toString())
    blocks[0].signature = Buffer.from('forged').toString('base64')
    const forged = { ...reasoning, encrypted_content: 'sluice1.' + Buffer.from(JSON.stringify(blocks)).toString('base64url') }
    const refused = await apiError(a.responses.create({ model: 'claude-sonnet-4-5', store: false, reasoning: { effort: 'low' }, max_output_tokens: 4000,
      input: [{ role: 'user', content: 'Think first.' }, forged, ...(r.output as any[]).filter((o) => o.type !== 'reasoning'), { role: 'user', content: 'Go on.' }] }))
    assert.equal(refused.status, 400)
    // Without include, the reasoning item comes without encrypted_content (as at OpenAI).
    const plain = await a.responses.create({ model: 'claude-sonnet-4-5', input: 'Think first.', reasoning: { effort: 'low' }, max_output_tokens: 4000 })
    assert.equal((plain.output.find((o) => o.type === 'reasoning') as any).encrypted_content, undefined)
  })

  it('namespace tools are flattened and come back with their namespace; hosted tools are omitted and listed', async () => {
    const { data, response } = await a.responses.create({
      model: 'claude-sonnet-4-5', input: 'Look it up [[mock-tool:crm__lookup {"id":"42"}]]',
      tools: [{ type: 'web_search' } as any, { type: 'namespace', name: 'crm', description: 'CRM', tools: [{ type: 'function', name: 'lookup', parameters: { type: 'object', properties: { id: { type: 'string' } } } }] } as any],
    }).withResponse()
    const call = data.output.find((o) => o.type === 'function_call') as any
    assert.deepEqual([call.namespace, call.name, JSON.parse(call.arguments)], ['crm', 'lookup', { id: '42' }])
    assert.equal(response.headers.get('x-sluice-omitted'), 'tools[0]')
    assert.deepEqual(sentToAnthropic().tools!.map((t) => t.name), ['crm__lookup'])
  })
})

describe('what coding agents send', () => {
  it('a Codex-shaped streamed turn (store: false, include, prompt_cache_key, reasoning, hosted + custom + function tools) completes; its items go back as input', async () => {
    const body: any = {
      model: 'claude-sonnet-4-5', instructions: 'You are a coding agent.', stream: true as const, store: false, parallel_tool_calls: false, tool_choice: 'auto' as const,
      include: ['reasoning.encrypted_content'], prompt_cache_key: 'session-1', reasoning: { effort: 'low' as const, summary: 'auto' as const }, text: { verbosity: 'low' as const },
      max_output_tokens: 4000,
      tools: [
        { type: 'function', name: 'shell', description: 'Run a command', parameters: { type: 'object', properties: { command: { type: 'array', items: { type: 'string' } } }, required: ['command'] }, strict: false },
        { type: 'custom', name: 'apply_patch', description: 'Apply a patch', format: { type: 'grammar', syntax: 'lark', definition: 'start: /.+/' } },
        { type: 'web_search' },
      ] as any[],
    }
    const first: any[] = []
    const s1 = (await a.responses.create({ ...body, input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Fix it [[mock-tool:apply_patch {"input":"*** Begin Patch"}]]' }] }] })) as unknown as AsyncIterable<any>
    for await (const ev of s1) first.push(ev)
    const done1 = first.at(-1)
    assert.equal(done1.type, 'response.completed')
    const items = done1.response.output as any[]
    assert.deepEqual(items.map((it) => it.type), ['reasoning', 'custom_tool_call'])
    assert.ok(items[0].encrypted_content.startsWith('sluice1.'))
    assert.deepEqual([items[1].name, items[1].input], ['apply_patch', '*** Begin Patch'])
    assert.ok(first.some((e) => e.type === 'response.custom_tool_call_input.done' && e.input === '*** Begin Patch'))
    assert.ok(first.some((e) => e.type === 'response.reasoning_summary_text.delta'))
    // The next turn, as Codex sends it with store: false: everything so far plus the tool's output.
    const s2 = (await a.responses.create({ ...body, input: [
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Fix it [[mock-tool:apply_patch {"input":"*** Begin Patch"}]]' }] },
      ...items,
      { type: 'custom_tool_call_output', call_id: items[1].call_id, output: 'Done!' },
    ] as any[] })) as unknown as AsyncIterable<any>
    let final: any = null
    for await (const ev of s2) if (ev.type === 'response.completed') final = ev.response
    assert.equal(final.output.at(-1).type, 'message')
    const sent = sentToAnthropic()
    assert.deepEqual(sent.messages.map((m) => m.role), ['user', 'assistant', 'user'])
    assert.deepEqual(sent.messages[1]!.content.map((c: any) => c.type), ['thinking', 'tool_use'])
    assert.deepEqual(sent.messages[2]!.content.map((c: any) => [c.type, c.content]), [['tool_result', 'Done!']])
    // Nothing was stored (store: false).
    assert.equal((await apiError(a.responses.retrieve(done1.response.id))).status, 404)
  })
})

describe('Responses on Gemini, Bedrock and chat-only backends', () => {
  it('Gemini answers a Responses call, streamed and not', async () => {
    const r = await a.responses.create({ model: 'gemini-2.5-flash', input: 'Hello Gemini' })
    assert.equal(r.usage!.output_tokens, 7)
    assert.ok(r.output_text.length > 0)
    const s = await a.responses.create({ model: 'gemini-2.5-flash', input: 'Hello Gemini', stream: true })
    let text = ''
    let usage: any = null
    for await (const ev of s) {
      if (ev.type === 'response.output_text.delta') text += ev.delta
      if (ev.type === 'response.completed') usage = ev.response.usage
    }
    assert.equal(text, r.output_text)
    assert.equal(usage.output_tokens, 7)
  })

  it('Bedrock answers a Responses call, streamed and not', async () => {
    const r = await a.responses.create({ model: 'nova', input: 'Hello Bedrock', max_output_tokens: 50 })
    assert.equal(r.usage!.output_tokens, 6)
    assert.ok(r.output_text.length > 0)
    const s = await a.responses.create({ model: 'nova', input: 'Hello Bedrock', stream: true, max_output_tokens: 50 })
    let text = ''
    for await (const ev of s) if (ev.type === 'response.output_text.delta') text += ev.delta
    assert.equal(text, r.output_text)
  })

  it('a chat-only server (responses: translate) gets chat completions; cached tokens reach the answer and the ledger', async () => {
    const id = rid()
    const r = await a.responses.create({ model: 'small-chat', input: 'Hello chat', prompt_cache_key: 'k1' }, { headers: { 'x-request-id': id } })
    assert.equal(up.last().url, '/v1/chat/completions')
    assert.equal(JSON.parse(up.last().body).prompt_cache_key, 'k1')
    assert.equal(r.usage!.input_tokens_details.cached_tokens, 3)
    assert.equal(r.usage!.output_tokens, 5)
    const row = (await tg.rows()).get(id)!
    assert.deepEqual([row.cachedTokens, row.completionTokens, row.promptTokens], [3, 5, r.usage!.input_tokens])
  })
})

describe('Responses passed through to backends that speak it', () => {
  it('a previous_response_id sticks to the pool member that created it', async () => {
    const servedBy = async (p: Promise<any>) => {
      const { data, response } = await (p as any).withResponse()
      return { id: data.id as string, backend: response.headers.get('x-sluice-backend') as string }
    }
    // Without a previous response, the round-robin pool alternates.
    const x = await servedBy(a.responses.create({ model: 'gpt-4o', input: 'Start.' }))
    const y = await servedBy(a.responses.create({ model: 'gpt-4o', input: 'Start.' }))
    assert.notEqual(x.backend, y.backend)
    let prev = x
    for (let i = 0; i < 4; i++) {
      const next = await servedBy(a.responses.create({ model: 'gpt-4o', input: `Turn ${i}.`, previous_response_id: prev.id }))
      assert.equal(next.backend, x.backend)
      prev = next
    }
    // The other member does not know the id (its own store): the pin is what makes the conversation work.
    const other = x.backend === 'nat-a' ? natB : natA
    const direct = await fetch(`${other.url}/v1/responses`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer k' }, body: JSON.stringify({ model: 'gpt-4o', input: 'x', previous_response_id: x.id }) })
    assert.equal(direct.status, 400)
    assert.equal(((await direct.json()) as any).error.code, 'previous_response_not_found')
    // GET and DELETE go to the member that keeps it.
    assert.equal((await a.responses.retrieve(prev.id)).id, prev.id)
    await a.responses.delete(prev.id)
    assert.equal((await apiError(a.responses.retrieve(prev.id))).status, 404)
  })

  it('a streamed native answer is relayed as the backend sent it and accounted', async () => {
    const id = rid()
    const s = await a.responses.create({ model: 'gpt-4o', input: 'Stream it.', stream: true, max_output_tokens: 9 }, { headers: { 'x-request-id': id } })
    let usage: any = null
    for await (const ev of s) if (ev.type === 'response.completed' || ev.type === 'response.incomplete') usage = ev.response.usage
    const row = (await tg.rows()).get(id)!
    assert.deepEqual([row.promptTokens, row.completionTokens, row.stream], [usage.input_tokens, 9, true])
  })
})

describe('bad input', () => {
  it('an unknown previous_response_id and malformed input items get documented 400s; the gateway keeps serving', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ input: 'x', previous_response_id: 'resp_does_not_exist' }, 'previous_response_id'],
      [{ input: 42 }, 'input'],
      [{ input: [{ type: 'function_call', name: 'f', arguments: '{}' }] }, 'input[0].call_id'],
      [{ input: [{ type: 'teleport' }] }, 'input[0].type'],
      [{ input: [{ role: 'robot', content: 'x' }] }, 'input[0].role'],
      [{ input: [{ role: 'user', content: [{ type: 'input_audio' }] }] }, 'input[0].content[0].type'],
      [{ input: 'x', tools: [{ type: 'function' }] }, 'tools[0].name'],
      [{ input: 'x', background: true }, 'background'],
      [{ input: 'x', text: { format: { type: 'json_schema', name: 'x' } } }, 'text.format.schema'],
    ]
    for (const [body, param] of cases) {
      const res = await fetch(`${tg.url}/v1/responses`, { method: 'POST', headers: { authorization: `Bearer ${KEY_A}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'claude-sonnet-4-5', ...body }) })
      assert.equal(res.status, 400, JSON.stringify(body))
      const err = ((await res.json()) as { error: { param: string; type: string } }).error
      assert.equal(err.param, param)
      assert.equal(err.type, 'invalid_request_error')
    }
    const ok = await a.responses.create({ model: 'claude-sonnet-4-5', input: 'Still there?' })
    assert.equal(ok.status, 'completed')
  })

  it("Azure's paths: /openai/responses?api-version=… and /openai/v1/responses, with GET", async () => {
    const headers = { 'api-key': KEY_A, 'content-type': 'application/json' }
    const made = await fetch(`${tg.url}/openai/responses?api-version=2025-04-01-preview`, { method: 'POST', headers, body: JSON.stringify({ model: 'claude-sonnet-4-5', input: 'Azure?' }) })
    assert.equal(made.status, 200)
    const r = (await made.json()) as { id: string; object: string }
    assert.equal(r.object, 'response')
    for (const p of [`/openai/responses/${r.id}?api-version=2025-04-01-preview`, `/openai/v1/responses/${r.id}`]) {
      const got = await fetch(`${tg.url}${p}`, { headers })
      assert.equal(got.status, 200)
      assert.equal(((await got.json()) as { id: string }).id, r.id)
    }
  })
})

describe('limits and metrics', () => {
  it('token limits and metrics count Responses calls (translated and native, streamed and not) like chat completions', async () => {
    const c = new OpenAI({ baseURL: `${tg.url}/v1`, apiKey: KEY_C, maxRetries: 0 })
    const usages: Array<{ input_tokens: number; output_tokens: number }> = []
    usages.push((await c.responses.create({ model: 'claude-sonnet-4-5', input: 'Count me.' })).usage!)
    const s = await c.responses.create({ model: 'claude-sonnet-4-5', input: 'Count me too.', stream: true })
    for await (const ev of s) if (ev.type === 'response.completed') usages.push(ev.response.usage!)
    usages.push((await c.responses.create({ model: 'gpt-4o', input: 'And me.', max_output_tokens: 4 })).usage!)
    assert.equal(usages.length, 3)
    const prompt = usages.reduce((n, u) => n + u.input_tokens, 0)
    const completion = usages.reduce((n, u) => n + u.output_tokens, 0)
    const admin = (path: string) => fetch(`${tg.adminUrl}${path}`, { headers: { authorization: `Bearer ${ADMIN}` } })
    let used = -1
    let samples: ReturnType<typeof parseProm> = []
    for (let i = 0; i < 250; i++) {
      used = ((await (await admin('/admin/limits?key=team-c')).json()) as { limits: Array<{ windows: Array<{ used: number }> }> }).limits[0]!.windows[0]!.used
      samples = parseProm(await (await admin('/metrics')).text())
      if (used === prompt + completion && sumOf(samples, 'sluice_requests_total', { consumer: 'team-c' }) === 3) break
      await new Promise((r) => setTimeout(r, 20))
    }
    assert.equal(used, prompt + completion, 'the token counter settled on the usage the client saw')
    assert.equal(sumOf(samples, 'sluice_tokens_total', { consumer: 'team-c', type: 'prompt' }), prompt)
    assert.equal(sumOf(samples, 'sluice_tokens_total', { consumer: 'team-c', type: 'completion' }), completion)
    assert.equal(sumOf(samples, 'sluice_requests_total', { consumer: 'team-c', status: '200' }), 3)
  })
})
