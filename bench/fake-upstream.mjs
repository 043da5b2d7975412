#!/usr/bin/env node
// A fake LLM as fast as node:http allows, so the benchmark measures the proxy, not the model.
// Non-streamed: a fixed 573-byte chat.completion (the size the perf anchors used). Streamed: an SSE
// chat.completion.chunk stream whose first frame goes out with the headers and the rest on the next
// tick, so time to first byte means something and a proxy that buffers the stream shows it.
// Run: node bench/fake-upstream.mjs [--port N] [--events N]   (prints "fake-upstream listening on PORT, …")
import { createServer } from 'node:http'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

export const COMPLETION_BYTES = 573

function fixedCompletion() {
  const body = {
    id: 'chatcmpl-bench0000000000000000000000',
    object: 'chat.completion',
    created: 1763683200,
    model: 'gpt-4o-mini-2024-07-18',
    choices: [{
      index: 0,
      message: { role: 'assistant', content: '', refusal: null },
      logprobs: null,
      finish_reason: 'stop',
    }],
    usage: {
      prompt_tokens: 24, completion_tokens: 12, total_tokens: 36,
      prompt_tokens_details: { cached_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0 },
    },
    service_tier: 'default',
    system_fingerprint: 'fp_bench',
  }
  // Pad the answer text so the whole body is exactly COMPLETION_BYTES long.
  const base = Buffer.byteLength(JSON.stringify(body))
  const sentence = 'Hello! This is a fixed answer from the benchmark upstream. '
  let text = ''
  while (base + text.length < COMPLETION_BYTES) text += sentence
  body.choices[0].message.content = text.slice(0, COMPLETION_BYTES - base).trimEnd().padEnd(COMPLETION_BYTES - base, '.')
  const out = Buffer.from(JSON.stringify(body))
  if (out.length !== COMPLETION_BYTES) throw new Error(`fixed completion is ${out.length} bytes`)
  return out
}

const WORDS = ['Hello', '!', ' This', ' is', ' a', ' streamed', ' answer', ' from', ' the', ' bench', ' upstream', '.']

/**
 * How many SSE events an OpenAI-shaped streamed answer has by default: the role frame, 17 content frames,
 * the finish frame and `[DONE]` (a usage frame comes on top only when `stream_options.include_usage`).
 * Issue 16 states its streaming target per answer of 20 events. Until 2026-12-02 the fake sent 15 (12
 * content frames): figures in BENCHMARKS.md older than that are per 15-event answer (`--events 15`).
 */
export const DEFAULT_STREAM_EVENTS = 20

function chunk(delta, finish) {
  return `data: ${JSON.stringify({
    id: 'chatcmpl-bench-stream', object: 'chat.completion.chunk', created: 1763683200, model: 'gpt-4o-mini-2024-07-18',
    system_fingerprint: 'fp_bench', choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
  })}\n\n`
}
const aev = (type, o) => `event: ${type}\ndata: ${JSON.stringify({ type, ...o })}\n\n`

/**
 * The canned answers for one stream length. `events` counts what an OpenAI client receives (see
 * DEFAULT_STREAM_EVENTS), so `events - 3` content pieces; the Anthropic twin carries the same pieces (its
 * own framing adds message_start, content_block_start, ping, content_block_stop, message_delta, message_stop).
 */
export function cannedAnswers(events = DEFAULT_STREAM_EVENTS) {
  if (!Number.isInteger(events) || events < 4) throw new Error(`a streamed answer needs at least 4 events, not ${events}`)
  const pieces = Array.from({ length: events - 3 }, (_, i) => WORDS[i % WORDS.length])
  const rest = pieces.map((p) => chunk({ content: p }, null)).join('') + chunk({}, 'stop')
  const usageFrame = `data: ${JSON.stringify({
    id: 'chatcmpl-bench-stream', object: 'chat.completion.chunk', created: 1763683200, model: 'gpt-4o-mini-2024-07-18',
    system_fingerprint: 'fp_bench', choices: [], usage: { prompt_tokens: 24, completion_tokens: pieces.length, total_tokens: 24 + pieces.length },
  })}\n\n`
  const aUsage = { input_tokens: 24, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 }
  return {
    pieces,
    firstFrame: Buffer.from(chunk({ role: 'assistant', content: '', refusal: null }, null)),
    restPlain: Buffer.from(rest + 'data: [DONE]\n\n'),
    restUsage: Buffer.from(rest + usageFrame + 'data: [DONE]\n\n'),
    // The same answer in Anthropic's Messages shape (POST /v1/messages), for translated-vs-untranslated runs:
    // message_start goes out with the headers, the rest next tick.
    aFirst: Buffer.from(aev('message_start', { message: { id: 'msg_bench', type: 'message', role: 'assistant', model: 'claude-bench', content: [], stop_reason: null, stop_sequence: null, usage: { ...aUsage, output_tokens: 1 } } })),
    aRest: Buffer.from(aev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }) + aev('ping', {}) +
      pieces.map((p) => aev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: p } })).join('') +
      aev('content_block_stop', { index: 0 }) + aev('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: pieces.length } }) + aev('message_stop', {})),
    aJson: Buffer.from(JSON.stringify({ id: 'msg_bench', type: 'message', role: 'assistant', model: 'claude-bench', content: [{ type: 'text', text: pieces.join('') }], stop_reason: 'end_turn', stop_sequence: null, usage: { ...aUsage, output_tokens: pieces.length } })),
  }
}

const COMPLETION = fixedCompletion()
const JSON_HEADERS = { 'content-type': 'application/json', 'content-length': String(COMPLETION.length) }
const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' }

/** Only the flags matter, so the body is searched as text, not parsed: the fake must cost next to nothing. */
const handlerFor = (a) => function handle(req, res) {
  const parts = []
  req.on('data', (d) => parts.push(d))
  req.on('end', () => {
    const text = parts.length === 1 ? parts[0].toString('latin1') : Buffer.concat(parts).toString('latin1')
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{"status":"ok"}')
      return
    }
    const anthropic = req.url.startsWith('/v1/messages')
    if (anthropic && !/"stream"\s*:\s*true/.test(text)) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(a.aJson.length) })
      res.end(a.aJson)
      return
    }
    if (anthropic) {
      res.writeHead(200, SSE_HEADERS)
      res.write(a.aFirst)
      setImmediate(() => res.end(a.aRest))
      return
    }
    if (!/"stream"\s*:\s*true/.test(text)) {
      res.writeHead(200, JSON_HEADERS)
      res.end(COMPLETION)
      return
    }
    res.writeHead(200, SSE_HEADERS)
    res.write(a.firstFrame)
    const rest = /"include_usage"\s*:\s*true/.test(text) ? a.restUsage : a.restPlain
    setImmediate(() => res.end(rest))
  })
}

export function startFakeUpstream(port = 0, host = '127.0.0.1', { events = DEFAULT_STREAM_EVENTS } = {}) {
  const server = createServer({ keepAliveTimeout: 120_000 }, handlerFor(cannedAnswers(events)))
  server.headersTimeout = 130_000
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve(server))
  })
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { port: { type: 'string', default: '0' }, events: { type: 'string', default: String(DEFAULT_STREAM_EVENTS) } } })
  const server = await startFakeUpstream(Number(values.port), '127.0.0.1', { events: Number(values.events) })
  process.stdout.write(`fake-upstream listening on ${server.address().port}, ${values.events} events per streamed answer\n`)
  process.on('SIGTERM', () => server.close(() => process.exit(0)))
  process.on('SIGINT', () => server.close(() => process.exit(0)))
}
