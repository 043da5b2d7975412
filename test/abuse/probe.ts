import { Worker } from 'node:worker_threads'
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'

/**
 * /healthz latency measured from a worker thread: its own event loop, so whatever the test's main thread is
 * doing (building a 10 MiB body, parsing answers) cannot delay or hide a probe. Every `intervalMs` it sends
 * one GET and records the time to the complete answer; a probe still waiting when the next is due counts
 * as over the bound as soon as it passes it.
 *
 * On a shared 2-core machine a probe can also wait because the gateway was not scheduled at all. To tell
 * that apart from the gateway blocking its own event loop, each probe reads the on-CPU time of the gateway's
 * main thread (Linux: /proc/PID/task/PID/schedstat, nanoseconds) before and after: a probe over the bound
 * during which that thread ran for at least the bound is the gateway's own doing (`ownOver`); a slow probe
 * during which it barely ran is the scheduler's.
 */
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads')
const http = require('node:http')
const fs = require('node:fs')
const agent = new http.Agent({ keepAlive: true, maxSockets: 4 })
const stats = { count: 0, failures: 0, max: 0, over: 0, samples: [], ownOver: 0, ownSamples: [], maxOwnCpu: 0 }
let stopped = false
const onCpuMs = () => {
  if (!workerData.pid) return 0
  try { return Number(fs.readFileSync('/proc/' + workerData.pid + '/task/' + workerData.pid + '/schedstat', 'utf8').split(' ')[0]) / 1e6 } catch { return 0 }
}
function once() {
  return new Promise((resolve) => {
    const t0 = performance.now()
    const cpu0 = onCpuMs()
    const req = http.get(workerData.url + '/healthz', { agent, timeout: 5000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d) => { body += d })
      res.on('end', () => {
        const ms = performance.now() - t0
        const cpu = onCpuMs() - cpu0
        stats.count++
        if (res.statusCode !== 200 || !body.includes('ok')) stats.failures++
        stats.max = Math.max(stats.max, ms)
        stats.maxOwnCpu = Math.max(stats.maxOwnCpu, Math.min(ms, cpu))
        if (ms > workerData.boundMs) {
          stats.over++; stats.samples.push(Math.round(ms) + 'ms/' + Math.round(cpu) + 'cpu')
          if (cpu >= workerData.boundMs) { stats.ownOver++; stats.ownSamples.push(Math.round(ms) + 'ms/' + Math.round(cpu) + 'cpu') }
        }
        resolve()
      })
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', () => { stats.count++; stats.failures++; stats.max = Math.max(stats.max, performance.now() - t0); resolve() })
  })
}
async function loop() {
  while (!stopped) {
    const next = performance.now() + workerData.intervalMs
    await once()
    const wait = next - performance.now()
    if (wait > 0) await new Promise((r) => setTimeout(r, wait))
  }
  parentPort.postMessage(stats)
}
parentPort.on('message', () => { stopped = true })
loop()
`

export interface ProbeStats {
  count: number; failures: number; max: number; over: number; samples: string[]
  /** Probes over the bound during which the gateway's main thread itself ran for at least the bound. */
  ownOver: number; ownSamples: string[]
  /** The longest stretch of the gateway's own main-thread CPU within one probe (ms). */
  maxOwnCpu: number
}

/** `pid`: the gateway process, whose main thread's on-CPU time tells its own stalls from the scheduler's. */
export function startHealthProbe(url: string, opts: { intervalMs?: number; boundMs?: number; pid?: number } = {}): { stop(): Promise<ProbeStats> } {
  const worker = new Worker(WORKER, { eval: true, workerData: { url, intervalMs: opts.intervalMs ?? 20, boundMs: opts.boundMs ?? 100, pid: opts.pid ?? 0 } })
  // Never what keeps the test process alive (a failed test that did not stop it must still let the file end).
  worker.unref()
  const done = new Promise<ProbeStats>((resolve, reject) => {
    worker.once('message', (s: ProbeStats) => { void worker.terminate(); resolve(s) })
    worker.once('error', reject)
  })
  return { stop: () => { worker.postMessage('stop'); return done } }
}

/** Resident memory of a process, in MiB (Linux /proc). */
export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (!m) throw new Error(`no VmRSS for ${pid}`)
  return Number(m[1]) / 1024
}

/** Runs `sluice start --config FILE`; resolves once it listens, with its whole output kept for inspection. */
export async function startGatewayProcess(configFile: string, env: Record<string, string> = {}): Promise<{ child: ChildProcess; stdout: () => string; stderr: () => string; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, ['bin/sluice.js', 'start', '--config', configFile], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d })
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const deadline = Date.now() + 30_000
  while (!out.includes('sluice listening')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`gateway did not start:\n${out}\n${err}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  return { child, stdout: () => out, stderr: () => err, exited }
}
