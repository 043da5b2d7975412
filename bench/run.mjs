#!/usr/bin/env node
// `npm run bench`: the gateway beside direct calls, a bare node:http pipe proxy and (with --peer portkey)
// Portkey, against a fast fake upstream. Method as in ../shared/reference/perf-anchors.md: the load
// generator and the fake upstream on CPU 0, the proxy under test alone on CPU 1; saturation closed-loop
// with -c50; fixed rates open-loop (latency = scheduled issue → last byte); streaming TTFB at a low rate;
// every round runs every target in turn, figures are medians over rounds. CPU µs/req is the proxy's
// utime+stime from /proc/PID/stat over a run divided by the requests completed in it.
// `--preset issue16` is the one command behind issue 16's report (see PRESETS below and BENCHMARKS.md).
import { execFileSync } from 'node:child_process'
import { request } from 'undici'
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join, resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { cpuMicros, cpuTimes, loadAverage, memory, resetPeak, stealBetween } from './lib/proc.mjs'
import { openLoop } from './lib/open-loop.mjs'
import { saturate, wrkAvailable } from './lib/saturate.mjs'
import { median } from './lib/stats.mjs'
import { connectInspector } from './lib/inspector.mjs'
import { ensurePortkey, freePort, sluiceRunsFrom, startFakeUpstream, startPipeProxy, startPortkey, startSluice } from './lib/targets.mjs'
import { formatSummary, summarize } from './profile-summary.mjs'
import { DEFAULT_STREAM_EVENTS } from './fake-upstream.mjs'
import { formatVerdicts, issue16Verdicts, ISSUE16_ROLES } from './lib/issue16.mjs'

const HERE = dirname(fileURLToPath(import.meta.url))
const ROOT = resolve(HERE, '..')

// A preset fills in every option the command line leaves out (explicit options win, --quick shortens it).
// issue16: ~18 min on this 2-core VM — 7 targets × 3 rounds × (5 s warm-up + 4 runs × 10 s) ≈ 16 min,
// plus the profile pass (3 variants × 2 kinds × 15 s) and start-ups.
const PRESETS = {
  issue16: {
    variant: ['auth', 'governed', 'anthropic-backend'], peer: ['portkey'], 'json-proxy': true, profile: true,
    rates: '1000', scenarios: 'sat,stream,rate,ttfb', duration: '10', warmup: '5', rounds: '3', 'stream-events': String(DEFAULT_STREAM_EVENTS),
  },
}

const HELP = `Usage: npm run bench -- [options]
  --preset issue16      issue 16's report from one run: auth, governed, translated (anthropic-backend), the
                        pipe and JSON-parsing floors, Portkey; every scenario at 1,000 req/s; the profile pass;
                        3 rounds × 10 s (≈ 18 min; with --quick ≈ 4 min). Explicit options override it.
  --quick               short smoke run: --duration 3 --warmup 2 --rounds 1 --rates 200,1000
  --duration S          seconds per measured run (default 10)
  --warmup S            seconds of unmeasured saturation before each target's runs, for the JIT (default 5; quick 2);
                        each fixed-rate run is also preceded by min(S, 3) s at its rate, unmeasured
  --rounds N            rounds, targets alternating within each; figures are medians (default 3)
  --connections N       closed-loop connections at saturation (default 50)
  --rates LIST          open-loop fixed rates in req/s (default 200,500,1000)
  --ttfb-rate N         open-loop rate of the streaming time-to-first-byte run (default 50)
  --stream-events N     SSE events per streamed answer from the fake upstream (default ${DEFAULT_STREAM_EVENTS};
                        figures in BENCHMARKS.md before 2026-12-02 were taken with 15)
  --variant NAME        gateway config bench/configs/NAME.yaml; repeatable (default: auth, auth-info-logs)
  --config FILE         any gateway config file (backend url http://127.0.0.1:\${FAKE_UPSTREAM_PORT}/v1,
                        consumer key sk-bench-0123456789abcdef); repeatable
  --peer portkey        also measure Portkey's gateway (@portkey-ai/gateway, npm-installed into /tmp/portkey-bench)
  --no-pipe             leave out the bare node:http pipe proxy
  --json-proxy          also measure the pipe proxy that parses and re-serialises both JSON bodies (issue 16's stretch floor)
  --scenarios LIST      any of sat,stream,rate,ttfb (default all)
  --loadgen wrk|autocannon  saturation tool (default wrk when installed, else autocannon)
  --profile             afterwards, CPU-profile each gateway variant over a saturation run (through its
                        inspector, start-up excluded), non-streaming and streaming: where the time goes
  --profile-only        only the profile pass (implies --profile)
  --proxy-cpu N / --loadgen-cpu N   CPUs to pin to (default 1 / 0); --no-pin to pin nothing
  --out FILE            also write every figure as JSON
`

const { values: given } = parseArgs({
  options: {
    preset: { type: 'string' },
    quick: { type: 'boolean', default: false },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    rounds: { type: 'string' },
    connections: { type: 'string' },
    rates: { type: 'string' },
    'ttfb-rate': { type: 'string' },
    'stream-events': { type: 'string' },
    variant: { type: 'string', multiple: true },
    config: { type: 'string', multiple: true },
    peer: { type: 'string', multiple: true },
    'no-pipe': { type: 'boolean' },
    'json-proxy': { type: 'boolean' },
    scenarios: { type: 'string' },
    loadgen: { type: 'string' },
    profile: { type: 'boolean' },
    'profile-only': { type: 'boolean' },
    'proxy-cpu': { type: 'string' },
    'loadgen-cpu': { type: 'string' },
    'no-pin': { type: 'boolean' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (given.help) {
  process.stdout.write(HELP)
  process.exit(0)
}
if (given.preset !== undefined && !PRESETS[given.preset]) fail(`unknown preset "${given.preset}" (known: ${Object.keys(PRESETS).join(', ')})`)
// --quick shortens a preset's runs rather than being overridden by them.
const presetValues = { ...PRESETS[given.preset] }
if (given.quick) for (const k of ['duration', 'warmup', 'rounds']) delete presetValues[k]
const DEFAULTS = {
  connections: '50', 'ttfb-rate': '50', 'stream-events': String(DEFAULT_STREAM_EVENTS), scenarios: 'sat,stream,rate,ttfb',
  'no-pipe': false, 'json-proxy': false, profile: false, 'profile-only': false, 'proxy-cpu': '1', 'loadgen-cpu': '0', 'no-pin': false,
}
const opt = { ...DEFAULTS, ...presetValues, ...Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) }

const cfg = {
  duration: Number(opt.duration ?? (opt.quick ? 3 : 10)),
  warmup: Number(opt.warmup ?? (opt.quick ? 2 : 5)),
  rounds: Number(opt.rounds ?? (opt.quick ? 1 : 3)),
  connections: Number(opt.connections),
  rates: (opt.rates ?? (opt.quick ? '200,1000' : '200,500,1000')).split(',').map(Number).filter((n) => n > 0),
  ttfbRate: Number(opt['ttfb-rate']),
  streamEvents: Number(opt['stream-events']),
  jsonProxy: opt['json-proxy'],
  preset: opt.preset ?? null,
  scenarios: new Set(opt.scenarios.split(',').map((s) => s.trim())),
  loadgen: opt.loadgen ?? (wrkAvailable() ? 'wrk' : 'autocannon'),
  proxyCpu: opt['no-pin'] ? null : Number(opt['proxy-cpu']),
  loadgenCpu: opt['no-pin'] ? null : Number(opt['loadgen-cpu']),
  profile: opt.profile || opt['profile-only'],
  profileOnly: opt['profile-only'],
  peers: opt.peer ?? [],
}
for (const p of cfg.peers) if (p !== 'portkey') fail(`unknown peer "${p}" (known: portkey)`)
if (!['wrk', 'autocannon'].includes(cfg.loadgen)) fail(`--loadgen is wrk or autocannon, not "${cfg.loadgen}"`)
if (cfg.loadgen === 'wrk' && !wrkAvailable()) fail('wrk is not installed (apt-get install -y wrk), or use --loadgen autocannon')
if (![cfg.duration, cfg.warmup, cfg.rounds, cfg.connections, cfg.ttfbRate].every((n) => Number.isFinite(n) && n >= 0) || cfg.rounds < 1 || cfg.duration <= 0) {
  fail('--duration, --rounds, --connections and --ttfb-rate take positive numbers')
}
if (!Number.isInteger(cfg.streamEvents) || cfg.streamEvents < 4) fail('--stream-events takes a whole number ≥ 4')

const variants = []
for (const v of opt.variant ?? (opt.config ? [] : ['auth', 'auth-info-logs'])) {
  const file = join(HERE, 'configs', `${v}.yaml`)
  if (!existsSync(file)) fail(`no variant "${v}": ${file} does not exist (have: ${readdirSync(join(HERE, 'configs')).map((f) => f.replace(/\.yaml$/, '')).join(', ')})`)
  variants.push({ name: `sluice ${v}`, file })
}
for (const f of opt.config ?? []) {
  const file = resolve(f)
  if (!existsSync(file)) fail(`--config ${f}: no such file`)
  variants.push({ name: `sluice ${f}`, file })
}

function fail(message) {
  process.stderr.write(`bench: ${message}\n`)
  process.exit(2)
}
const log = (m) => process.stderr.write(`[bench] ${m}\n`)

// The consumer key every bench config declares; harmless to direct and the pipe proxy, forwarded upstream by Portkey.
const KEY = 'sk-bench-0123456789abcdef'
const HEADERS = { 'content-type': 'application/json', authorization: `Bearer ${KEY}` }
const MESSAGES = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'Say hello in one short sentence.' },
]
const BODY = JSON.stringify({ model: 'gpt-4o-mini', messages: MESSAGES, max_tokens: 50 })
const STREAM_BODY = JSON.stringify({ model: 'gpt-4o-mini', messages: MESSAGES, max_tokens: 50, stream: true })

// ---------------------------------------------------------------------------------------------------------
const cpuCount = availableParallelism() // read before pinning narrows it to one
const tmp = mkdtempSync(join(tmpdir(), 'sluice-bench-'))
const started = new Date()
const loadBefore = loadAverage()
const cpuBefore = cpuTimes()
const gatewayFrom = sluiceRunsFrom()
if (cfg.loadgenCpu !== null) {
  if (cpuCount < 2) fail('pinning needs two CPUs; pass --no-pin on a one-CPU machine')
  // Every thread of this process, and every child it starts (wrk, the fake upstream), on the load generator's CPU.
  execFileSync('taskset', ['-a', '-p', '-c', String(cfg.loadgenCpu), String(process.pid)], { stdio: 'ignore' })
}
const command = `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim()
log(`${command}`)
if (gatewayFrom === 'src') log('the gateway runs from src/ through tsx (dist/ is missing or older than src/: `npm run build` first to measure the build)')
log(`logs and scratch files in ${tmp}; load generator ${cfg.loadgen}; proxies on CPU ${cfg.proxyCpu ?? 'any'}, load + fake upstream on CPU ${cfg.loadgenCpu ?? 'any'}`)

const running = []
process.on('SIGINT', async () => {
  log('interrupted: stopping targets')
  await Promise.allSettled(running.map((t) => t.stop()))
  process.exit(130)
})

const upstream = await startFakeUpstream({ logDir: tmp, events: cfg.streamEvents })
running.push(upstream)
const common = { upstreamPort: upstream.port, cpu: cfg.proxyCpu, logDir: tmp, headers: HEADERS, body: BODY }

const targets = [upstream]
const results = {} // target name -> scenario key -> array of per-round results
const memoryOf = {}
const streamEventsOf = {}

try {
  if (!cfg.profileOnly) {
    if (!opt['no-pipe']) targets.push(await startPipeProxy(common))
    if (cfg.jsonProxy) targets.push(await startPipeProxy({ ...common, json: true }))
    for (const v of variants) targets.push(await startSluice({ ...common, name: v.name, configFile: v.file }))
    if (cfg.peers.includes('portkey')) {
      ensurePortkey(log)
      targets.push(await startPortkey(common))
    }
    running.push(...targets.slice(1))
    for (const t of targets) memoryOf[t.name] = { idleMiB: memory(t.pid).rssMiB, peakMiB: NaN }
    log(`targets: ${targets.map((t) => `${t.name} (pid ${t.pid})`).join(', ')}`)
    // What each target really streams back: a proxy that drops, merges or adds events changes what
    // "CPU per streamed answer" means, so the count is checked here and printed in the report.
    for (const t of targets) streamEventsOf[t.name] = await countStreamEvents(t)
    log(`SSE events per streamed answer: ${targets.map((t) => `${t.name} ${streamEventsOf[t.name]}`).join(', ')}`)
    const perTarget = (cfg.scenarios.has('sat') || cfg.scenarios.has('stream') ? cfg.warmup : 0) +
      cfg.duration * (['sat', 'stream', 'ttfb'].filter((k) => cfg.scenarios.has(k)).length + (cfg.scenarios.has('rate') ? cfg.rates.length : 0)) +
      (cfg.scenarios.has('rate') && cfg.warmup > 0 ? Math.min(cfg.warmup, 3) * cfg.rates.length : 0)
    const profileS = cfg.profile ? variants.length * 2 * (Math.max(1, cfg.warmup) + cfg.duration) : 0
    log(`expected duration ≈ ${Math.ceil((perTarget * targets.length * cfg.rounds + profileS) / 60)} min (${cfg.rounds} round(s) × ${targets.length} targets × ${perTarget} s${profileS ? ` + profiles ${profileS} s` : ''}, start-ups not counted)`)

    for (let round = 0; round < cfg.rounds; round++) {
      // Rotate the order each round so no target always runs right after the same neighbour.
      const order = targets.map((_, i) => targets[(i + round) % targets.length])
      for (const t of order) await measureTarget(t, round)
    }
    for (const t of targets) {
      // VmHWM is reset before every run, so the peak over the whole run is the largest of the runs' peaks.
      const runs = Object.values(results[t.name] ?? {}).flat().map((r) => r.peakRssMiB).filter(Number.isFinite)
      memoryOf[t.name].peakMiB = runs.length ? Math.max(...runs, memory(t.pid).peakMiB) : memory(t.pid).peakMiB
      memoryOf[t.name].satPeakMiB = maxOf(results[t.name]?.sat, 'peakRssMiB')
      memoryOf[t.name].streamPeakMiB = maxOf(results[t.name]?.stream, 'peakRssMiB')
    }
  }
} finally {
  await Promise.allSettled(running.slice(1).map((t) => t.stop()))
}

let profiles = []
if (cfg.profile) {
  for (const v of variants) profiles.push(...(await profileVariant(v)))
}
await upstream.stop()

const loadAfter = loadAverage()
const steal = stealBetween(cpuBefore, cpuTimes())
const finished = new Date()
const verdicts = issue16Verdicts({ targets, results, memory: memoryOf, rates: cfg.rates })
const report = renderReport()
process.stdout.write(report + '\n')
if (opt.out) {
  writeFileSync(opt.out, JSON.stringify({
    command, gatewayFrom, started: started.toISOString(), finished: finished.toISOString(), cfg: { ...cfg, scenarios: [...cfg.scenarios] }, loadBefore, loadAfter, steal,
    streamEvents: streamEventsOf,
    // results: target → scenario → one entry per round (round, figures, proxy-CPU steal during the run), so spread is visible.
    results, memory: memoryOf, issue16: verdicts, profiles,
  }, null, 2))
  log(`figures written to ${opt.out}`)
}

// ---------------------------------------------------------------------------------------------------------
function maxOf(rs, field) {
  const v = (rs ?? []).map((r) => r[field]).filter(Number.isFinite)
  return v.length ? Math.max(...v) : NaN
}

function record(t, key, value, round) {
  ;((results[t.name] ??= {})[key] ??= []).push({ round: round + 1, ...value })
}

/** Events (SSE frames, `[DONE]` included) in one streamed answer through the target. */
async function countStreamEvents(t) {
  const res = await request(t.url, { method: 'POST', headers: headersFor(t), body: STREAM_BODY, headersTimeout: 10_000, bodyTimeout: 10_000 })
  const text = await res.body.text()
  if (res.statusCode !== 200) fail(`${t.name}: a streamed request answered ${res.statusCode}: ${text.slice(0, 300)}`)
  return text.split(/\r?\n\r?\n/).filter((f) => /^data:/m.test(f)).length
}

function headersFor(t) {
  return { ...HEADERS, ...t.extraHeaders }
}

async function measured(t, fn) {
  // Each run's own peak RSS: issue 16's "≤ 150 MiB at saturation with 50 connections" is about the
  // saturation run, not the open-loop runs whose queue can hold hundreds of requests in flight.
  const peakReset = resetPeak(t.pid)
  const before = cpuMicros(t.pid)
  const machineBefore = cpuTimes()
  const r = await fn()
  const cpu = cpuMicros(t.pid) - before
  const done = r.requests ?? r.completed
  const st = stealBetween(machineBefore, cpuTimes())
  const line = cfg.proxyCpu === null ? 'cpu' : `cpu${cfg.proxyCpu}`
  return { ...r, cpuUsPerReq: done > 0 ? cpu / done : NaN, proxyCpuSteal: st[line]?.steal ?? NaN, peakRssMiB: peakReset ? memory(t.pid).peakMiB : NaN }
}

async function measureTarget(t, round) {
  const sat = (body) => saturate({ tool: cfg.loadgen, url: t.url, headers: headersFor(t), body, connections: cfg.connections, durationS: cfg.duration, tmpDir: tmp })
  if (cfg.scenarios.has('sat') || cfg.scenarios.has('stream')) {
    if (cfg.warmup > 0) await saturate({ tool: cfg.loadgen, url: t.url, headers: headersFor(t), body: BODY, connections: cfg.connections, durationS: cfg.warmup, tmpDir: tmp })
  }
  if (cfg.scenarios.has('sat')) {
    const r = await measured(t, () => sat(BODY))
    record(t, 'sat', r, round)
    log(`round ${round + 1} ${t.name} saturation: ${r.rps.toFixed(0)} req/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, ${r.cpuUsPerReq.toFixed(0)} µs CPU/req${r.errors ? `, ${r.errors} errors` : ''}`)
  }
  if (cfg.scenarios.has('stream')) {
    const r = await measured(t, () => sat(STREAM_BODY))
    record(t, 'stream', r, round)
    log(`round ${round + 1} ${t.name} streaming saturation: ${r.rps.toFixed(0)} req/s, p99 ${r.p99.toFixed(2)} ms, ${r.cpuUsPerReq.toFixed(0)} µs CPU/req${r.errors ? `, ${r.errors} errors` : ''}`)
  }
  if (cfg.scenarios.has('rate')) {
    for (const rate of cfg.rates) {
      // Unmeasured, the same client at the same rate first: the closed-loop warm-up does not warm the paths an
      // open-loop client takes (its own headers, hundreds of fresh connections), and a JIT still settling
      // right after it gave gateways 1–3 s of queueing (event-loop stalls of 50–120 ms) that no steady state has.
      if (cfg.warmup > 0) await openLoop({ url: t.url, headers: headersFor(t), body: BODY, rate, durationS: Math.min(cfg.warmup, 3) })
      const r = await measured(t, () => openLoop({ url: t.url, headers: headersFor(t), body: BODY, rate, durationS: cfg.duration }))
      record(t, `rate${rate}`, r, round)
      log(`round ${round + 1} ${t.name} at ${rate} req/s: achieved ${r.achievedRps.toFixed(0)}, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, ${r.cpuUsPerReq.toFixed(0)} µs CPU/req${r.errors + r.non2xx ? `, ${r.errors + r.non2xx} errors` : ''}`)
    }
  }
  if (cfg.scenarios.has('ttfb')) {
    const r = await measured(t, () => openLoop({ url: t.url, headers: headersFor(t), body: STREAM_BODY, rate: cfg.ttfbRate, durationS: cfg.duration, stream: true }))
    record(t, 'ttfb', r, round)
    log(`round ${round + 1} ${t.name} streaming at ${cfg.ttfbRate} req/s: TTFB p50 ${r.ttfbP50.toFixed(2)} ms, p99 ${r.ttfbP99.toFixed(2)} ms, first content p50 ${r.ttfcP50.toFixed(2)} ms${r.errors + r.non2xx ? `, ${r.errors + r.non2xx} errors` : ''}`)
  }
}

/**
 * A fresh gateway started with its inspector open, warmed up, then CPU-profiled over one saturation run
 * per body kind (the DevTools profiler, 1 ms sampling like `node --cpu-prof`, but only over the run).
 */
async function profileVariant(v) {
  const out = []
  const inspectPort = await freePort()
  const t = await startSluice({ ...common, name: `${v.name} (profiled)`, configFile: v.file, nodeArgs: [`--inspect=127.0.0.1:${inspectPort}`] })
  running.push(t)
  const inspector = await connectInspector(inspectPort)
  try {
    for (const [kind, body] of [['non-streaming', BODY], ['streaming', STREAM_BODY]]) {
      const run = (durationS) => saturate({ tool: cfg.loadgen, url: t.url, headers: HEADERS, body, connections: cfg.connections, durationS, tmpDir: tmp })
      await run(Math.max(1, cfg.warmup))
      await inspector.startProfile()
      const r = await measured(t, () => run(cfg.duration))
      const profile = await inspector.stopProfile()
      const file = join(tmp, `${v.name.replace(/[^A-Za-z0-9._-]/g, '_')}-${kind}.cpuprofile`)
      writeFileSync(file, JSON.stringify(profile))
      log(`profile of ${v.name} (${kind}) at ${r.rps.toFixed(0)} req/s, ${r.cpuUsPerReq.toFixed(0)} µs CPU/req with the profiler on: ${file}`)
      out.push({ variant: v.name, kind, file, rps: r.rps, cpuUsPerReq: r.cpuUsPerReq, text: formatSummary(summarize(profile), { top: 30, requests: r.requests }) })
    }
  } finally {
    inspector.close()
    await t.stop()
    running.splice(running.indexOf(t), 1)
  }
  return out
}

// ---------------------------------------------------------------------------------------------------------
function med(t, key, field) {
  const rs = results[t.name]?.[key]
  return rs ? median(rs.map((r) => r[field])) : NaN
}
function rounds(t, key, field) {
  const rs = results[t.name]?.[key] ?? []
  return rs.length > 1 ? rs.map((r) => f0(r[field])).join(' / ') : '—'
}
/** Errors + non-2xx over rounds, with the non-2xx broken down by status and error code. */
function failures(t, key) {
  const rs = results[t.name]?.[key] ?? []
  const by = {}
  for (const r of rs) for (const [k, n] of Object.entries(r.statuses ?? {})) by[k] = (by[k] ?? 0) + n
  const total = sum(t, key, 'errors', 'non2xx')
  const parts = Object.entries(by).map(([k, n]) => `${n} × ${k}`)
  const noAnswer = sum(t, key, 'errors')
  if (noAnswer) parts.push(`${noAnswer} no answer`)
  return total ? `${total} (${parts.join(', ')})` : '0'
}
function sum(t, key, ...fields) {
  const rs = results[t.name]?.[key] ?? []
  return rs.reduce((a, r) => a + fields.reduce((b, f) => b + (r[f] ?? 0), 0), 0)
}
function f0(n) { return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—' }
function pct(n) { return Number.isFinite(n) ? `${(100 * n).toFixed(1)} %` : '—' }
function f2(n) { return Number.isFinite(n) ? n.toFixed(2) : '—' }
function signed(n) { return Number.isFinite(n) ? (n >= 0 ? '+' : '−') + Math.abs(n).toFixed(2) : '—' }
function table(head, rows) {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n')
}

function renderReport() {
  const direct = targets[0]
  const lines = []
  lines.push(`# Sluice benchmark — ${started.toISOString().replace(/\.\d+Z$/, 'Z')}`)
  lines.push('')
  lines.push(`Command: \`${command}\``)
  lines.push(`Gateway ${gatewayFrom === 'dist' ? 'from its compiled build (dist/)' : 'from src/ through tsx (dist/ missing or stale: RSS includes the loader, ≈ 28 MiB)'}${cfg.preset ? `; preset ${cfg.preset}` : ''}.`)
  lines.push(`Node ${process.version}, ${cpuCount} CPUs, load average ${loadBefore.join(' ')} before / ${loadAfter.join(' ')} after; ` +
    `load generator ${cfg.loadgen} (saturation, ${cfg.connections} connections) and an open-loop undici client (fixed rates); ` +
    `${cfg.rounds} round(s) × ${cfg.duration} s per run (warm-up ${cfg.warmup} s per target and round), medians; proxies on CPU ${cfg.proxyCpu ?? 'any'}, load generator + fake upstream on CPU ${cfg.loadgenCpu ?? 'any'}.`)
  const stealLines = Object.entries(steal).map(([name, v]) => `${name === 'cpu' ? 'all CPUs' : name.replace('cpu', 'CPU ')} ${pct(v.steal)} steal, ${pct(v.busy)} busy`)
  lines.push(`Run ${started.toISOString().replace(/\.\d+Z$/, 'Z')} → ${finished.toISOString().replace(/\.\d+Z$/, 'Z')} (${((finished - started) / 60000).toFixed(1)} min); CPU steal over the run (/proc/stat): ${stealLines.join('; ')}. ` +
    'Steal is time the hypervisor gave to other guests while this VM wanted to run; each run\'s steal on the proxy\'s CPU is in the JSON (`proxyCpuSteal`).')
  lines.push(`Streamed answers: the fake upstream sends ${cfg.streamEvents} SSE events per answer (role frame, ${cfg.streamEvents - 3} content frames, finish frame, [DONE]); received through each target: ` +
    `${Object.entries(streamEventsOf).map(([n, c]) => `${n} ${c}`).join(', ') || 'not probed'}.`)
  lines.push('"direct" is the fake upstream itself (its CPU µs/req is the fake\'s own cost, on the load generator\'s CPU). Errors are summed over rounds; "per round" lists each round\'s figure in round order.')
  if (targets.length > 1) {
    if (cfg.scenarios.has('sat')) {
      lines.push('', '## Saturation, non-streaming (closed loop)', '')
      lines.push(table(['target', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs/req', 'per round', 'errors'], targets.map((t) => [
        t.name, f0(med(t, 'sat', 'rps')), f2(med(t, 'sat', 'p50')), f2(med(t, 'sat', 'p99')), f0(med(t, 'sat', 'cpuUsPerReq')), rounds(t, 'sat', 'cpuUsPerReq'), String(sum(t, 'sat', 'errors')),
      ])))
    }
    if (cfg.scenarios.has('stream')) {
      lines.push('', `## Saturation, streaming (closed loop; ${cfg.streamEvents} SSE events per answer)`, '')
      lines.push(table(['target', 'answers/s', 'p50 ms', 'p99 ms', 'CPU µs/answer', 'per round', 'errors'], targets.map((t) => [
        t.name, f0(med(t, 'stream', 'rps')), f2(med(t, 'stream', 'p50')), f2(med(t, 'stream', 'p99')), f0(med(t, 'stream', 'cpuUsPerReq')), rounds(t, 'stream', 'cpuUsPerReq'), String(sum(t, 'stream', 'errors')),
      ])))
    }
    if (cfg.scenarios.has('rate')) {
      lines.push('', '## Fixed rates, non-streaming (open loop; latency = scheduled issue → last byte)', '')
      const rows = []
      for (const rate of cfg.rates) {
        const k = `rate${rate}`
        for (const t of targets) {
          rows.push([String(rate), t.name, f0(med(t, k, 'achievedRps')), f2(med(t, k, 'p50')), f2(med(t, k, 'p99')),
            t === direct ? '—' : `${signed(med(t, k, 'p50') - med(direct, k, 'p50'))} / ${signed(med(t, k, 'p99') - med(direct, k, 'p99'))}`,
            f0(med(t, k, 'cpuUsPerReq')), failures(t, k)])
        }
      }
      lines.push(table(['req/s', 'target', 'achieved', 'p50 ms', 'p99 ms', 'added p50 / p99 ms', 'CPU µs/req', 'errors'], rows))
    }
    if (cfg.scenarios.has('ttfb')) {
      lines.push('', `## Streaming time to first byte and to first content (open loop, ${cfg.ttfbRate} req/s)`, '')
      lines.push('First content is the first chat delta with text; the fake upstream sends a role-only chunk with the headers and the content on the next turn, and Sluice holds the stream until its first content (so a backend that fails before it is failed over unseen): its first byte *is* its first content.', '')
      lines.push(table(['target', 'TTFB p50 ms', 'TTFB p99 ms', 'added TTFB p50 / p99 ms', 'first content p50 ms', 'added first content p50 / p99 ms', 'last byte p50 ms', 'errors'], targets.map((t) => [
        t.name, f2(med(t, 'ttfb', 'ttfbP50')), f2(med(t, 'ttfb', 'ttfbP99')),
        t === direct ? '—' : `${signed(med(t, 'ttfb', 'ttfbP50') - med(direct, 'ttfb', 'ttfbP50'))} / ${signed(med(t, 'ttfb', 'ttfbP99') - med(direct, 'ttfb', 'ttfbP99'))}`,
        f2(med(t, 'ttfb', 'ttfcP50')),
        t === direct ? '—' : `${signed(med(t, 'ttfb', 'ttfcP50') - med(direct, 'ttfb', 'ttfcP50'))} / ${signed(med(t, 'ttfb', 'ttfcP99') - med(direct, 'ttfb', 'ttfcP99'))}`,
        f2(med(t, 'ttfb', 'p50')), String(sum(t, 'ttfb', 'errors', 'non2xx')),
      ])))
    }
    lines.push('', '## Memory (RSS, MiB)', '')
    lines.push('VmHWM is reset (`/proc/PID/clear_refs`) before every measured run, so each column is the peak of those runs only; "any run" includes the open-loop runs, whose queue can hold hundreds of requests when a target falls behind.', '')
    lines.push(table(['target', 'idle (after start)', 'peak, saturation (50 conn.)', 'peak, streaming saturation', 'peak, any run'], targets.map((t) => [
      t.name, f0(memoryOf[t.name]?.idleMiB), f0(memoryOf[t.name]?.satPeakMiB), f0(memoryOf[t.name]?.streamPeakMiB), f0(memoryOf[t.name]?.peakMiB),
    ])))
    // Issue 2's absolute targets (≤ 200 µs/req, ≤ 1.5 ms added p99, ≤ 100 MiB) are superseded by issue 16's
    // relative ones; their verdicts stay in BENCHMARKS.md's history and are no longer computed here.
    lines.push('', '## Against the targets (issue 16)', '')
    lines.push(`Roles: auth = \`${ISSUE16_ROLES.auth}\`, governed = \`${ISSUE16_ROLES.governed}\` (auth + token limit + emit-token-metric + SQLite ledger + info access log), ` +
      `translated = \`${ISSUE16_ROLES.translated}\` (OpenAI client → Anthropic backend; its untranslated twin is auth, the same config but the backend type). ` +
      'Ratios are taken per round and the verdict is on their median; "not measured" means the run left that target or scenario out.', '')
    lines.push(formatVerdicts(verdicts))
  }
  for (const p of profiles) {
    lines.push('', `## Profile: ${p.variant}, ${p.kind}, saturation (${f0(p.rps)} req/s, ${f0(p.cpuUsPerReq)} µs CPU/req with the profiler on)`, '', '```', p.text, '```')
  }
  return lines.join('\n')
}
