// Closed-loop saturation: N connections, each sending its next request as soon as the last one is answered.
// wrk (C, one thread) when it is installed — it leaves the most of CPU 0 to the fake upstream — else
// autocannon's programmatic API. Both report completed requests, req/s and latency percentiles.
import { execFile, execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import autocannon from 'autocannon'

export function wrkAvailable() {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' })
    return true
  } catch (err) {
    // wrk --version exits 1 after printing its version; only a missing binary is ENOENT.
    return err.code !== 'ENOENT'
  }
}

/**
 * @param {object} o
 * @param {'wrk'|'autocannon'} o.tool
 * @param {string} o.url
 * @param {Record<string,string>} o.headers
 * @param {string} o.body
 * @param {number} o.connections
 * @param {number} o.durationS
 * @param {string} o.tmpDir  where the wrk Lua script is written
 * @returns {Promise<{requests:number, rps:number, p50:number, p99:number, errors:number}>} latencies in ms
 */
export function saturate(o) {
  return o.tool === 'wrk' ? runWrk(o) : runAutocannon(o)
}

function luaString(s) {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`
}

function runWrk(o) {
  const script = join(o.tmpDir, `wrk-${process.pid}-${Math.random().toString(36).slice(2)}.lua`)
  const lines = ['wrk.method = "POST"', `wrk.body = ${luaString(o.body)}`]
  for (const [k, v] of Object.entries(o.headers)) lines.push(`wrk.headers[${luaString(k)}] = ${luaString(v)}`)
  writeFileSync(script, lines.join('\n') + '\n')
  const args = ['-t1', `-c${o.connections}`, `-d${o.durationS}s`, '--latency', '--timeout', '10s', '-s', script, o.url]
  return new Promise((resolve, reject) => {
    execFile('wrk', args, { encoding: 'utf8', timeout: (o.durationS + 30) * 1000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`wrk failed: ${stderr || err.message}`))
      resolve(parseWrk(stdout))
    })
  })
}

function toMs(text) {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text)
  if (!m) return NaN
  const v = Number(m[1])
  return m[2] === 'us' ? v / 1000 : m[2] === 'ms' ? v : m[2] === 's' ? v * 1000 : v * 60_000
}

export function parseWrk(out) {
  const num = (re) => {
    const m = re.exec(out)
    return m ? Number(m[1]) : 0
  }
  const pct = (p) => {
    const m = new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out)
    return m ? toMs(m[1]) : NaN
  }
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  const socketErrors = socket ? Number(socket[1]) + Number(socket[3]) + Number(socket[4]) : 0
  return {
    requests: num(/(\d+) requests in/),
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    p50: pct(50),
    p99: pct(99),
    errors: num(/Non-2xx or 3xx responses: (\d+)/) + socketErrors,
  }
}

async function runAutocannon(o) {
  const r = await autocannon({
    url: o.url, method: 'POST', headers: o.headers, body: o.body,
    connections: o.connections, duration: o.durationS, timeout: 10,
  })
  const ok = r['2xx'] ?? 0
  return {
    requests: ok + (r.non2xx ?? 0),
    rps: (ok + (r.non2xx ?? 0)) / o.durationS,
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: (r.non2xx ?? 0) + (r.errors ?? 0) + (r.timeouts ?? 0),
  }
}
