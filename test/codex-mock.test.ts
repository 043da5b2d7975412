import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import Anthropic from '@anthropic-ai/sdk'
import { encode } from 'gpt-tokenizer'
import { startMockServer, type MockServer } from '../src/mock/llm.ts'

/**
 * The mock drives a Codex task in every dialect Sluice may translate Codex's Responses calls to: the prompt's
 * marker makes it call Codex's shell tool (`exec_command {cmd}`), and with x-mock-tool-echo its answer to the
 * tool's output quotes that output (so the test sees the output made the round trip). Without the header the
 * answer after a tool result is the mock's usual prose: the echo is opt-in, existing figures do not move.
 * Clients are the official SDKs, as Sluice would be.
 */

let mock: MockServer
before(async () => { mock = await startMockServer({ port: 0 }) })
after(async () => { await mock.close() })

const EXEC = { type: 'function' as const, name: 'exec_command', description: 'Runs a command.', strict: false, parameters: { type: 'object', properties: { cmd: { type: 'string' } }, required: ['cmd'], additionalProperties: false } }
const NAMESPACE = { type: 'namespace', name: 'multi_agent_v1', description: 'Sub-agents.', tools: [{ type: 'function', name: 'spawn_agent', parameters: { type: 'object', properties: {} } }] }
const ARGS = '{"cmd":"cat answer.txt"}'
const ASK = `Run it. [[mock-tool:exec_command ${ARGS}]]`
const OUTPUT = 'Process exited with code 0\nOutput:\n4217\n'
const ECHO = { 'x-mock-tool-echo': 'true' }

test('Responses: the marker gets an exec_command call, streamed in argument deltas and whole without a stream', async () => {
  const client = new OpenAI({ baseURL: `${mock.url}/v1`, apiKey: 'sk-mock' })
  const body = { model: 'gpt-5.4', input: [{ type: 'message' as const, role: 'user' as const, content: [{ type: 'input_text' as const, text: ASK }] }], tools: [EXEC, NAMESPACE as any, { type: 'web_search' as const }] }
  const whole = await client.responses.create(body)
  assert.equal(whole.output.length, 1)
  const call = whole.output[0] as OpenAI.Responses.ResponseFunctionToolCall
  assert.deepEqual({ type: call.type, name: call.name, arguments: call.arguments }, { type: 'function_call', name: 'exec_command', arguments: ARGS })
  assert.match(call.call_id, /^call_/)
  // The call's output tokens: name plus arguments.
  assert.equal(whole.usage!.output_tokens, encode('exec_command').length + encode(ARGS).length)

  const stream = await client.responses.create({ ...body, stream: true })
  let deltas = ''
  let done: OpenAI.Responses.Response | undefined
  let added = 0
  for await (const ev of stream) {
    if (ev.type === 'response.output_item.added') added++
    if (ev.type === 'response.function_call_arguments.delta') deltas += ev.delta
    if (ev.type === 'response.completed') done = ev.response
  }
  assert.equal(added, 1)
  assert.equal(deltas, ARGS)
  assert.equal((done!.output[0] as OpenAI.Responses.ResponseFunctionToolCall).arguments, ARGS)
  assert.deepEqual(done!.usage, whole.usage)
})

test('Responses: a turn ending with the tool output gets it quoted with x-mock-tool-echo, and prose without', async () => {
  const client = new OpenAI({ baseURL: `${mock.url}/v1`, apiKey: 'sk-mock' })
  const input: OpenAI.Responses.ResponseInputItem[] = [
    { type: 'message', role: 'user', content: [{ type: 'input_text', text: ASK }] },
    { type: 'function_call', call_id: 'call_1', name: 'exec_command', arguments: ARGS },
    { type: 'function_call_output', call_id: 'call_1', output: OUTPUT },
  ]
  const echoed = await client.responses.create({ model: 'gpt-5.4', input, tools: [EXEC], stream: true }, { headers: ECHO })
  let text = ''
  let usage: OpenAI.Responses.ResponseUsage | undefined
  for await (const ev of echoed) {
    if (ev.type === 'response.output_text.delta') text += ev.delta
    if (ev.type === 'response.completed') usage = ev.response.usage ?? undefined
  }
  assert.equal(text, `Tool result: ${OUTPUT.trim()}`)
  assert.equal(usage!.output_tokens, encode(text).length)
  const plain = await client.responses.create({ model: 'gpt-5.4', input, tools: [EXEC] })
  assert.equal(plain.output[0]!.type, 'message')
  assert.doesNotMatch(plain.output_text, /4217/)
})

test('Chat completions: the same call, and the echo of a tool message', async () => {
  const client = new OpenAI({ baseURL: `${mock.url}/v1`, apiKey: 'sk-mock' })
  const tools = [{ type: 'function' as const, function: { name: 'exec_command', parameters: EXEC.parameters } }]
  const first = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: ASK }], tools })
  assert.deepEqual(first.choices[0]!.message.tool_calls!.map((c) => c.type === 'function' && [c.function.name, c.function.arguments]), [['exec_command', ARGS]])
  const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [
    { role: 'user', content: ASK },
    { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'exec_command', arguments: ARGS } }] },
    { role: 'tool', tool_call_id: 'call_1', content: OUTPUT },
  ]
  const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages, tools, stream: true, stream_options: { include_usage: true } }, { headers: ECHO })
  let text = ''
  let completion = 0
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta.content ?? ''
    if (chunk.usage) completion = chunk.usage.completion_tokens
  }
  assert.equal(text, `Tool result: ${OUTPUT.trim()}`)
  assert.equal(completion, encode(text).length)
  const plain = await client.chat.completions.create({ model: 'gpt-4o-mini', messages, tools })
  assert.doesNotMatch(plain.choices[0]!.message.content ?? '', /4217/)
})

test('Anthropic Messages: the same call, and the echo of a tool_result', async () => {
  const client = new Anthropic({ baseURL: mock.url, apiKey: 'sk-ant-mock' })
  const tools = [{ name: 'exec_command', input_schema: EXEC.parameters as Anthropic.Tool.InputSchema }]
  const first = await client.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 100, messages: [{ role: 'user', content: ASK }], tools })
  const use = first.content.find((b) => b.type === 'tool_use') as Anthropic.ToolUseBlock
  assert.deepEqual({ name: use.name, input: use.input }, { name: 'exec_command', input: JSON.parse(ARGS) })
  const messages: Anthropic.MessageParam[] = [
    { role: 'user', content: ASK },
    { role: 'assistant', content: [{ type: 'tool_use', id: use.id, name: 'exec_command', input: JSON.parse(ARGS) }] },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: OUTPUT }] },
  ]
  const stream = client.messages.stream({ model: 'claude-sonnet-4-5', max_tokens: 100, messages, tools }, { headers: ECHO })
  const final = await stream.finalMessage()
  const text = final.content.map((b) => (b.type === 'text' ? b.text : '')).join('')
  assert.equal(text, `Tool result: ${OUTPUT.trim()}`)
  assert.equal(final.stop_reason, 'end_turn')
  assert.ok(final.usage.output_tokens > 0)
  const plain = await client.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 100, messages, tools })
  assert.doesNotMatch(plain.content.map((b) => (b.type === 'text' ? b.text : '')).join(''), /4217/)
})
