// An open-loop load client: requests go out on a fixed schedule whether or not earlier ones have come back,
// and each latency is measured from the time the request was *scheduled*, not sent, so a stalled target
// cannot hide its queue (no coordinated omission). Latency is issue → last byte; for streams also
// issue → first body byte (TTFB) and issue → first content (TTFC: the first chat delta with text in it,
// issue 16's "time to first content"; a stream's first byte may be a role-only chunk).
import { performance } from 'node:perf_hooks'
import { Pool } from 'undici'
import { percentile } from './stats.mjs'

/** A chat chunk's delta with text in it (`"content":"` then anything but the closing quote). */
export const FIRST_CONTENT = /"content":"[^"]/
const CONTENT_CARRY = 64

/**
 * @param {object} o
 * @param {string} o.url       full URL of the endpoint
 * @param {Record<string,string>} o.headers
 * @param {string} o.body
 * @param {number} o.rate      requests per second
 * @param {number} o.durationS seconds of schedule
 * @param {boolean} [o.stream] read the body as a stream and time the first byte
 * @param {number} [o.connections] most connections the client may open (a slow target queues beyond that)
 * @param {number} [o.timeoutMs] a request still unanswered after this is counted as an error
 * @param {number} [o.intervalS] with onInterval: report every this many seconds on the requests that ended in it
 * @param {(s: {completed:number, non2xx:number, errors:number, statuses:Record<string,number>, achievedRps:number, p50:number, p99:number}) => void} [o.onInterval]
 */
export async function openLoop(o) {
  const u = new URL(o.url)
  const pool = new Pool(u.origin, { connections: o.connections ?? 512, pipelining: 1, keepAliveTimeout: 60_000 })
  const timeoutMs = o.timeoutMs ?? 30_000
  const n = Math.max(1, Math.round(o.rate * o.durationS))
  const interval = 1000 / o.rate
  const total = new Float64Array(n).fill(NaN)
  const first = new Float64Array(n).fill(NaN)
  const firstContent = new Float64Array(n).fill(NaN)
  let settled = 0
  let errors = 0
  let non2xx = 0
  let lastEnd = 0
  const statuses = {} // non-2xx answers by "status code" (e.g. "429 too_many_concurrent_requests")
  let bucket = { lat: [], non2xx: 0, errors: 0, statuses: {}, since: performance.now() }
  let resolveAll
  const allDone = new Promise((r) => { resolveAll = r })
  const path = u.pathname + u.search

  const fire = (k, scheduled) => {
    pool.request({ method: 'POST', path, headers: o.headers, body: o.body, headersTimeout: timeoutMs, bodyTimeout: timeoutMs })
      .then(async (res) => {
        const ok = res.statusCode >= 200 && res.statusCode < 300
        if (!ok) {
          // An error answer is read whole for its code (`error.code`, else `error.type`), so a soak can
          // tell the gateway's own load shedding from a refused key or a failed upstream.
          const text = await res.body.text()
          const end = performance.now()
          let code = ''
          try {
            const e = JSON.parse(text).error
            code = String(e?.code ?? e?.type ?? '')
          } catch {
            // not JSON: the status alone
          }
          const key = code ? `${res.statusCode} ${code}` : String(res.statusCode)
          non2xx++
          statuses[key] = (statuses[key] ?? 0) + 1
          bucket.non2xx++
          bucket.statuses[key] = (bucket.statuses[key] ?? 0) + 1
          if (end > lastEnd) lastEnd = end
          return
        }
        if (o.stream) {
          let tail = '' // the end of the previous read, for a delta split across two reads
          for await (const chunk of res.body) {
            if (Number.isNaN(first[k])) first[k] = performance.now() - scheduled
            if (Number.isNaN(firstContent[k])) {
              const text = tail + chunk.toString('latin1')
              if (FIRST_CONTENT.test(text)) firstContent[k] = performance.now() - scheduled
              else tail = text.slice(-CONTENT_CARRY)
            }
          }
        } else {
          await res.body.arrayBuffer()
        }
        const end = performance.now()
        total[k] = end - scheduled
        bucket.lat.push(total[k])
        if (end > lastEnd) lastEnd = end
      })
      .catch(() => { errors++; bucket.errors++ })
      .finally(() => { if (++settled === n) resolveAll() })
  }

  const t0 = performance.now() + 5
  const flush = () => {
    const b = bucket
    bucket = { lat: [], non2xx: 0, errors: 0, statuses: {}, since: performance.now() }
    const lat = b.lat.sort((x, y) => x - y)
    o.onInterval({ completed: lat.length, non2xx: b.non2xx, errors: b.errors, statuses: b.statuses, achievedRps: (1000 * lat.length) / (bucket.since - b.since), p50: percentile(lat, 50), p99: percentile(lat, 99) })
  }
  const reporter = o.onInterval && o.intervalS > 0 ? setInterval(flush, o.intervalS * 1000) : null
  let i = 0
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now()
      while (i < n && t0 + i * interval <= now) {
        fire(i, t0 + i * interval)
        i++
      }
      if (i >= n) return resolve()
      // A timer, not a spin: the client shares its core with the fake upstream. Late sends still count
      // from their scheduled time, so timer jitter shows in the figures rather than hiding.
      setTimeout(tick, Math.max(0, t0 + i * interval - performance.now() - 0.2))
    }
    tick()
  })
  const scheduleEnd = performance.now()
  let timer
  const stuck = await Promise.race([allDone.then(() => false), new Promise((r) => { timer = setTimeout(() => r(true), timeoutMs + 1000) })])
  clearTimeout(timer)
  if (reporter) {
    clearInterval(reporter)
    flush() // the tail: the last partial interval and the drain after the schedule
  }
  await pool.destroy().catch(() => {})
  const ok = [...total].filter((v) => !Number.isNaN(v)).sort((a, b) => a - b)
  const ttfb = [...first].filter((v) => !Number.isNaN(v)).sort((a, b) => a - b)
  const ttfc = [...firstContent].filter((v) => !Number.isNaN(v)).sort((a, b) => a - b)
  const elapsed = (Math.max(lastEnd, scheduleEnd) - t0) / 1000
  return {
    scheduled: n,
    completed: ok.length,
    errors: errors + (stuck ? n - settled : 0),
    non2xx,
    statuses,
    achievedRps: ok.length / elapsed,
    p50: percentile(ok, 50),
    p90: percentile(ok, 90),
    p99: percentile(ok, 99),
    max: ok.length ? ok[ok.length - 1] : NaN,
    ttfbP50: o.stream ? percentile(ttfb, 50) : NaN,
    ttfbP99: o.stream ? percentile(ttfb, 99) : NaN,
    ttfcP50: o.stream ? percentile(ttfc, 50) : NaN,
    ttfcP99: o.stream ? percentile(ttfc, 99) : NaN,
  }
}
