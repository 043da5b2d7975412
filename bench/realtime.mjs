#!/usr/bin/env node
// Realtime relay cost: the same WebSocket exchanges made directly against the mock's Realtime endpoint and
// through a gateway process (bin/sluice.js start, a token-limit policy, SQLite ledger) in front of it, and
// the gateway's RSS while it holds N idle sessions. The client is the `ws` library, the same for both paths.
//
//   node bench/realtime.mjs [--events 400] [--responses 100] [--sessions 100,500,1000] [--rounds 2]
//
// Per-event latency: `session.update` → `session.updated` round trips (one event each way: the gateway adds
// two relay hops and the parse of one client event). Per response: `response.create` → `response.done`
// (text, 16 deltas: the reservation, 19 relayed server events, the settlement and a ledger row).
import { spawn } from 'node:child_process'
import { mkdtempSync, openSync, closeSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import WebSocket from 'ws'
import { freePort } from './lib/targets.mjs'
import { loadAverage, memory } from './lib/proc.mjs'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const { values } = parseArgs({ options: { events: { type: 'string', default: '400' }, responses: { type: 'string', default: '100' }, sessions: { type: 'string', default: '100,500,1000' }, rounds: { type: 'string', default: '2' } } })
const EVENTS = Number(values.events)
const RESPONSES = Number(values.responses)
const SESSIONS = values.sessions.split(',').map(Number)
const ROUNDS = Number(values.rounds)
const KEY = 'sk-bench-realtime-key'
const dir = mkdtempSync(join(tmpdir(), 'sluice-rt-bench-'))

function launch(name, args) {
  const fd = openSync(join(dir, `${name}.log`), 'a')
  const child = spawn(process.execPath, [join(ROOT, 'bin/sluice.js'), ...args], { cwd: ROOT, stdio: ['ignore', fd, fd] })
  closeSync(fd)
  return child
}

async function waitOpen(url, headers, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      const ws = await connect(url, headers)
      ws.close()
      return
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${url} did not open: ${err.message}; logs in ${dir}`)
      await new Promise((r) => setTimeout(r, 250))
    }
  }
}

/** Opens a session and resolves once its session.created arrived. */
function connect(url, headers) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, perMessageDeflate: false })
    ws.once('error', reject)
    ws.once('unexpected-response', (_q, res) => reject(new Error(`status ${res.statusCode}`)))
    ws.once('message', () => resolve(ws))
  })
}

function waitFor(ws, type) {
  return new Promise((resolve) => {
    const on = (data) => {
      const ev = JSON.parse(data.toString())
      if (ev.type === type) { ws.off('message', on); resolve(ev) }
    }
    ws.on('message', on)
  })
}

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] }
const fmt = (xs) => ({ p50: pct(xs, 50).toFixed(3), p90: pct(xs, 90).toFixed(3), p99: pct(xs, 99).toFixed(3), mean: (xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(3) })

async function eventRtt(url, headers, n) {
  const ws = await connect(url, headers)
  const out = []
  const update = JSON.stringify({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'] } })
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint()
    const p = waitFor(ws, 'session.updated')
    ws.send(update)
    await p
    out.push(Number(process.hrtime.bigint() - t) / 1e6)
  }
  ws.close()
  return out
}

async function responseTime(url, headers, n) {
  const ws = await connect(url, headers)
  ws.send(JSON.stringify({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'] } }))
  await waitFor(ws, 'session.updated')
  ws.send(JSON.stringify({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hello there' }] } }))
  const out = []
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint()
    const p = waitFor(ws, 'response.done')
    ws.send(JSON.stringify({ type: 'response.create', response: { max_output_tokens: 16 } }))
    await p
    out.push(Number(process.hrtime.bigint() - t) / 1e6)
  }
  ws.close()
  return out
}

const mockPort = await freePort()
const gwPort = await freePort()
const adminPort = await freePort()
const mock = launch('mock', ['mock', '--port', String(mockPort)])
const cfg = join(dir, 'sluice.yaml')
writeFileSync(cfg, `
listen: { host: 127.0.0.1, port: ${gwPort} }
admin: { host: 127.0.0.1, port: ${adminPort}, token: bench-admin-token }
logging: { level: warn }
ledger: { type: sqlite, path: ${join(dir, 'ledger.db')} }
requestLimits: { maxInflightPerConsumer: 100000 }
backends:
  - { id: mock, type: openai-compatible, url: http://127.0.0.1:${mockPort}/v1 }
models:
  - { name: gpt-realtime, target: mock }
policies:
  - token-limit: { counterKey: consumer.id, tokensPerMinute: 1000000000 }
consumers:
  - { id: bench, keys: [ { value: ${KEY} } ] }
`)
const gw = launch('gateway', ['start', '--config', cfg])
const headers = { authorization: `Bearer ${KEY}` }
const direct = `ws://127.0.0.1:${mockPort}/v1/realtime?model=gpt-realtime`
const via = `ws://127.0.0.1:${gwPort}/v1/realtime?model=gpt-realtime`
try {
  await waitOpen(direct, headers)
  await waitOpen(via, headers)
  console.log(`load average at start: ${loadAverage().join(' ')}`)
  // Warm-up (JIT, tokenizer) on both paths.
  await eventRtt(direct, headers, 100); await eventRtt(via, headers, 100)
  await responseTime(direct, headers, 20); await responseTime(via, headers, 20)
  for (let r = 1; r <= ROUNDS; r++) {
    const d = await eventRtt(direct, headers, EVENTS)
    const g = await eventRtt(via, headers, EVENTS)
    console.log(`round ${r} event RTT ms  direct ${JSON.stringify(fmt(d))}`)
    console.log(`round ${r} event RTT ms  sluice ${JSON.stringify(fmt(g))}`)
    const dr = await responseTime(direct, headers, RESPONSES)
    const gr = await responseTime(via, headers, RESPONSES)
    console.log(`round ${r} response ms   direct ${JSON.stringify(fmt(dr))}`)
    console.log(`round ${r} response ms   sluice ${JSON.stringify(fmt(gr))}`)
  }
  const base = memory(gw.pid)
  console.log(`gateway RSS idle after the latency runs: ${base.rssMiB.toFixed(1)} MiB (peak ${base.peakMiB.toFixed(1)})`)
  let held = []
  for (const n of SESSIONS) {
    while (held.length < n) {
      const batch = []
      for (let i = 0; i < Math.min(50, n - held.length - batch.length); i++) batch.push(connect(via, headers))
      held.push(...(await Promise.all(batch)))
    }
    // Every session is live: one event round trip on all of them at once.
    const t = Date.now()
    await Promise.all(held.map((ws) => { const p = waitFor(ws, 'session.updated'); ws.send(JSON.stringify({ type: 'session.update', session: { type: 'realtime' } })); return p }))
    const m = memory(gw.pid)
    console.log(`${n} sessions held: gateway RSS ${m.rssMiB.toFixed(1)} MiB (peak ${m.peakMiB.toFixed(1)}), ${((m.rssMiB - base.rssMiB) * 1024 / n).toFixed(1)} KiB/session over idle; one event on all of them: ${Date.now() - t} ms`)
  }
  for (const ws of held) ws.close()
  held = []
  await new Promise((r) => setTimeout(r, 1000))
  const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`, { headers: { authorization: 'Bearer bench-admin-token' } })).text()
  console.log(metrics.split('\n').filter((l) => l.startsWith('sluice_realtime_sessions_active')).join('\n'))
  console.log(`load average at end: ${loadAverage().join(' ')}`)
} finally {
  gw.kill('SIGINT')
  mock.kill('SIGINT')
}
