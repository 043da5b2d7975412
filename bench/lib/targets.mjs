// Starting and stopping the processes under test. Each proxy runs as its own process pinned with
// `taskset -c CPU` (taskset execs, so the child's pid is the proxy's pid and /proc/PID/stat is its cost).
import { spawn, execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, openSync, closeSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join, resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer()
    s.once('error', rej)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => res(port))
    })
  })
}

function pinned(cpu, cmd, args) {
  return cpu === null ? [cmd, args] : ['taskset', ['-c', String(cpu), cmd, ...args]]
}

/** Spawns a server process with stdout/stderr in a log file; rejects with the log tail if it dies early. */
function launch(name, cmd, args, { cpu, env, logDir, cwd = ROOT }) {
  const logFile = join(logDir, `${name.replace(/[^A-Za-z0-9._-]/g, '_')}.log`)
  const fd = openSync(logFile, 'a')
  const [c, a] = pinned(cpu, cmd, args)
  const child = spawn(c, a, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', fd, fd] })
  closeSync(fd)
  const exited = new Promise((res) => child.once('exit', (code, signal) => res({ code, signal })))
  return { child, pid: child.pid, logFile, exited }
}

function tail(file) {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-15).join('\n')
  } catch {
    return ''
  }
}

/** Waits until one real request through the target answers 200 (proves routing and auth, not just a socket). */
async function ready(proc, url, headers, body, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs
  let last = ''
  let dead = null
  proc.exited.then((e) => { dead = e })
  while (Date.now() < deadline) {
    if (dead) throw new Error(`exited (${dead.code ?? dead.signal}) before it was ready; log ${proc.logFile}:\n${tail(proc.logFile)}`)
    try {
      const res = await request(url, { method: 'POST', headers, body, headersTimeout: 5000, bodyTimeout: 5000 })
      const text = await res.body.text()
      if (res.statusCode === 200) return
      last = `status ${res.statusCode}: ${text.slice(0, 300)}`
    } catch (err) {
      last = err.message
    }
    await new Promise((r) => setTimeout(r, 200))
  }
  throw new Error(`not ready after ${timeoutMs} ms (${last}); log ${proc.logFile}:\n${tail(proc.logFile)}`)
}

async function stop(proc, graceMs = 10_000) {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return
  proc.child.kill('SIGINT')
  const t = setTimeout(() => proc.child.kill('SIGKILL'), graceMs)
  await proc.exited
  clearTimeout(t)
}

const CHAT_PATH = '/v1/chat/completions'

/** `events`: SSE events per streamed answer (bench/fake-upstream.mjs's DEFAULT_STREAM_EVENTS when absent). */
export async function startFakeUpstream({ logDir, events }) {
  const port = await freePort()
  const eventArgs = events === undefined ? [] : ['--events', String(events)]
  // Not pinned here: it inherits the harness's CPU (the load generator's), as in the perf anchors.
  const proc = launch('fake-upstream', process.execPath, [join(ROOT, 'bench/fake-upstream.mjs'), '--port', String(port), ...eventArgs], { cpu: null, env: {}, logDir })
  const base = `http://127.0.0.1:${port}`
  await ready(proc, base + CHAT_PATH, { 'content-type': 'application/json' }, '{"model":"x","messages":[]}')
  return { name: 'direct', kind: 'direct', pid: proc.pid, url: base + CHAT_PATH, port, extraHeaders: {}, stop: () => stop(proc), logFile: proc.logFile }
}

/** The bare pipe proxy; with `json`, its variant that parses and re-serialises both JSON bodies (issue 16's stretch floor). */
export async function startPipeProxy({ upstreamPort, cpu, logDir, headers, body, json = false }) {
  const port = await freePort()
  const name = json ? 'json-proxy' : 'pipe-proxy'
  const proc = launch(name, process.execPath, [join(ROOT, 'bench/pipe-proxy.mjs'), '--upstream', `http://127.0.0.1:${upstreamPort}`, '--port', String(port), ...(json ? ['--json'] : [])], { cpu, env: {}, logDir })
  const url = `http://127.0.0.1:${port}${CHAT_PATH}`
  await ready(proc, url, headers, body)
  return { name: json ? 'node:http JSON-parsing proxy' : 'node:http pipe proxy', kind: json ? 'json' : 'pipe', pid: proc.pid, url, port, extraHeaders: {}, stop: () => stop(proc), logFile: proc.logFile }
}

/**
 * What `bin/sluice.js` will run, by its own rule (dist/ when at least as new as every file in src/): the
 * tsx fallback costs ≈ 28 MiB of RSS and some start-up, so the report says which one was measured.
 */
export function sluiceRunsFrom() {
  const built = join(ROOT, 'dist', 'src', 'cli.js')
  if (process.env.SLUICE_FROM_SOURCE === '1' || !existsSync(built)) return 'src'
  const newest = (dir) => {
    let n = 0
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name)
      n = Math.max(n, e.isDirectory() ? newest(p) : statSync(p).mtimeMs)
    }
    return n
  }
  return statSync(built).mtimeMs >= newest(join(ROOT, 'src')) ? 'dist' : 'src'
}

/** The gateway from this checkout (or the one at `root`): `node bin/sluice.js start --config FILE --port N`. */
export async function startSluice({ name, configFile, upstreamPort, cpu, logDir, headers, body, nodeArgs = [], env = {}, root = ROOT }) {
  const port = await freePort()
  const proc = launch(name, process.execPath, [...nodeArgs, join(root, 'bin/sluice.js'), 'start', '--config', configFile, '--port', String(port)], {
    cpu, env: { ...env, FAKE_UPSTREAM_PORT: String(upstreamPort) }, logDir, cwd: root,
  })
  const url = `http://127.0.0.1:${port}${CHAT_PATH}`
  await ready(proc, url, headers, body)
  return { name, kind: 'sluice', pid: proc.pid, url, port, extraHeaders: {}, stop: () => stop(proc, 20_000), logFile: proc.logFile }
}

export const PORTKEY_DIR = '/tmp/portkey-bench'
const PORTKEY_ENTRY = join(PORTKEY_DIR, 'node_modules/@portkey-ai/gateway/build/start-server.js')
/**
 * What is installed there. @portkey-ai/gateway asks for `@hono/node-server ^1.3.3`, and npm picks the newest
 * 1.x, whose Response keeps a fetch response's own (immutable) Headers by reference: Portkey's
 * ResponseService.updateHeaders then throws `TypeError: immutable` and every *streamed* chat completion fails
 * with 500 "Something went wrong" (Portkey-AI/gateway issues 1389 and 1550; the streaming column of earlier
 * BENCHMARKS.md runs shows it as thousands of errors). 1.14.2, the version issue 1389 names as the last good
 * one, still fails on the streaming path here (checked 2026-12-02); 1.3.3, the bottom of Portkey's own
 * range, copies the headers and streams. The gateway is pinned too, so runs compare.
 */
export const PORTKEY_PACKAGE = {
  private: true,
  dependencies: { '@portkey-ai/gateway': '1.15.2' },
  overrides: { '@hono/node-server': '1.3.3' },
}

function installedVersion(pkg) {
  try {
    return JSON.parse(readFileSync(join(PORTKEY_DIR, 'node_modules', pkg, 'package.json'), 'utf8')).version
  } catch {
    return undefined
  }
}

/** Installs @portkey-ai/gateway into a throwaway folder (once, or again when the pins changed) with the ordinary npm client. */
export function ensurePortkey(log) {
  const want = JSON.stringify(PORTKEY_PACKAGE, null, 2) + '\n'
  let have = ''
  try { have = readFileSync(join(PORTKEY_DIR, 'package.json'), 'utf8') } catch { /* not installed yet */ }
  if (have === want && existsSync(PORTKEY_ENTRY) && installedVersion('@hono/node-server') === PORTKEY_PACKAGE.overrides['@hono/node-server']) return
  log(`installing @portkey-ai/gateway ${PORTKEY_PACKAGE.dependencies['@portkey-ai/gateway']} (with @hono/node-server ${PORTKEY_PACKAGE.overrides['@hono/node-server']}) into ${PORTKEY_DIR} …`)
  mkdirSync(PORTKEY_DIR, { recursive: true })
  writeFileSync(join(PORTKEY_DIR, 'package.json'), want)
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--no-package-lock'], { cwd: PORTKEY_DIR, stdio: 'inherit' })
  const hono = installedVersion('@hono/node-server')
  if (hono !== PORTKEY_PACKAGE.overrides['@hono/node-server']) throw new Error(`Portkey's @hono/node-server is ${hono}, not the pinned ${PORTKEY_PACKAGE.overrides['@hono/node-server']}`)
}

export function portkeyVersion() {
  try {
    return JSON.parse(readFileSync(join(PORTKEY_DIR, 'node_modules/@portkey-ai/gateway/package.json'), 'utf8')).version
  } catch {
    return 'unknown'
  }
}

/**
 * Portkey's open-source gateway, `node build/start-server.js --port=N --headless`, told per request to
 * call the fake upstream as OpenAI (`x-portkey-provider: openai`, `x-portkey-custom-host`); 127.0.0.1 is
 * in its default list of trusted custom hosts.
 */
export async function startPortkey({ upstreamPort, cpu, logDir, headers, body }) {
  const port = await freePort()
  const proc = launch('portkey', process.execPath, [PORTKEY_ENTRY, `--port=${port}`, '--headless'], { cpu, env: {}, logDir })
  const extraHeaders = { 'x-portkey-provider': 'openai', 'x-portkey-custom-host': `http://127.0.0.1:${upstreamPort}/v1` }
  const url = `http://127.0.0.1:${port}${CHAT_PATH}`
  await ready(proc, url, { ...headers, ...extraHeaders }, body)
  return { name: `Portkey ${portkeyVersion()}`, kind: 'portkey', pid: proc.pid, url, port, extraHeaders, stop: () => stop(proc), logFile: proc.logFile }
}
