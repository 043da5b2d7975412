// Issue 16's targets, judged from one run's own figures. Ratios are taken round by round (the two targets
// of a ratio ran minutes apart in the same round, so slow drift of the machine cancels) and the verdict is
// on the median of those per-round ratios; the range over rounds is reported beside it.
import { median } from './stats.mjs'

/** Which target of the run plays which part in the issue's targets (by variant name or target kind). */
export const ISSUE16_ROLES = {
  auth: 'sluice auth',
  governed: 'sluice governed',
  translated: 'sluice anthropic-backend', // its untranslated twin is `auth`: the same config but the backend type
}

const byRound = (rs = []) => new Map(rs.map((r) => [r.round, r]))

/** Median and range over rounds of f(a's round, b's round), for the rounds both have. */
export function perRound(a = [], b = [], f) {
  const bm = byRound(b)
  const values = a.filter((r) => bm.has(r.round)).map((r) => f(r, bm.get(r.round))).filter(Number.isFinite)
  return { value: median(values), min: values.length ? Math.min(...values) : NaN, max: values.length ? Math.max(...values) : NaN, rounds: values }
}

/** Median and range over rounds of one field. */
export function ofRounds(a = [], f) {
  const values = a.map(f).filter(Number.isFinite)
  return { value: median(values), min: values.length ? Math.min(...values) : NaN, max: values.length ? Math.max(...values) : NaN, rounds: values }
}

export function verdict(value, limit) {
  return Number.isFinite(value) ? (value <= limit ? 'met' : 'MISSED') : 'not measured'
}

/**
 * @param {object} o
 * @param {{name:string, kind:string}[]} o.targets
 * @param {Record<string, Record<string, any[]>>} o.results  target name → scenario key → per-round figures
 * @param {Record<string, {idleMiB:number, peakMiB:number}>} o.memory
 * @param {number[]} o.rates
 * @returns {{id:string, what:string, unit:string, limit:number|null, value:number, min:number, max:number, rounds:number[], verdict:string}[]}
 */
export function issue16Verdicts({ targets, results, memory, rates }) {
  const find = (pred) => targets.find(pred)
  const direct = find((t) => t.kind === 'direct')
  const pipe = find((t) => t.kind === 'pipe')
  const json = find((t) => t.kind === 'json')
  const portkey = find((t) => t.kind === 'portkey')
  const role = (name) => find((t) => t.name === name)
  const auth = role(ISSUE16_ROLES.auth)
  const governed = role(ISSUE16_ROLES.governed)
  const translated = role(ISSUE16_ROLES.translated)
  const rs = (t, key) => (t ? results[t.name]?.[key] : undefined)
  const cpu = (a, b) => a.cpuUsPerReq / b.cpuUsPerReq
  const rows = []
  const add = (id, what, unit, limit, stats) => rows.push({ id, what, unit, limit, ...stats, verdict: limit === null ? 'context' : verdict(stats.value, limit) })

  add('auth-cpu-x-pipe', 'CPU per request at saturation, auth ÷ pipe proxy', '×', 1.2, perRound(rs(auth, 'sat'), rs(pipe, 'sat'), cpu))
  add('governed-cpu-x-pipe', 'CPU per request at saturation, governed ÷ pipe proxy', '×', 1.5, perRound(rs(governed, 'sat'), rs(pipe, 'sat'), cpu))
  if (json) add('governed-cpu-x-json', 'stretch: CPU per request, governed ÷ JSON-parsing proxy', '×', 1.0, perRound(rs(governed, 'sat'), rs(json, 'sat'), cpu))
  add('auth-stream-x-pipe', 'CPU per streamed answer, auth ÷ pipe proxy', '×', 1.5, perRound(rs(auth, 'stream'), rs(pipe, 'stream'), cpu))
  add('governed-stream-x-pipe', 'CPU per streamed answer, governed ÷ pipe proxy', '×', 1.5, perRound(rs(governed, 'stream'), rs(pipe, 'stream'), cpu))
  const ttfb = (a, d) => a.ttfbP50 - d.ttfbP50
  add('pipe-ttfb', 'streaming TTFB p50 added over direct, pipe proxy (the floor)', 'ms', null, perRound(rs(pipe, 'ttfb'), rs(direct, 'ttfb'), ttfb))
  add('auth-ttfb', 'streaming TTFB p50 added over direct, auth', 'ms', null, perRound(rs(auth, 'ttfb'), rs(direct, 'ttfb'), ttfb))
  // The target is time to first *content* (the issue's words): direct's first byte is a role-only chunk.
  const ttfc = (a, d) => a.ttfcP50 - d.ttfcP50
  add('pipe-ttfc', 'streaming time to first content p50 added over direct, pipe proxy (the floor)', 'ms', null, perRound(rs(pipe, 'ttfb'), rs(direct, 'ttfb'), ttfc))
  add('auth-ttfc', 'streaming time to first content p50 added over direct, auth', 'ms', 0.5, perRound(rs(auth, 'ttfb'), rs(direct, 'ttfb'), ttfc))
  add('governed-ttfc', 'streaming time to first content p50 added over direct, governed', 'ms', 0.5, perRound(rs(governed, 'ttfb'), rs(direct, 'ttfb'), ttfc))
  const top = rates.includes(1000) ? 1000 : Math.max(...rates)
  const at = top === 1000 ? '1,000 req/s' : `${top} req/s (the target is at 1,000)`
  const p99 = (a, b) => a.p99 - b.p99
  add('pipe-p99', `p99 added over direct at ${at}, pipe proxy (the floor)`, 'ms', null, perRound(rs(pipe, `rate${top}`), rs(direct, `rate${top}`), p99))
  // p99 is over the 2xx answers only, so a target that sheds load (429) or drops requests at this rate
  // would look better for it: any such answer in any round is a miss, whatever the p99 says.
  const failedAt = (t) => (rs(t, `rate${top}`) ?? []).reduce((a, r) => a + (r.errors ?? 0) + (r.non2xx ?? 0), 0)
  const p99Row = (id, what, t) => {
    add(id, what, 'ms', 2, perRound(rs(t, `rate${top}`), rs(pipe, `rate${top}`), p99))
    const row = rows[rows.length - 1]
    const failed = failedAt(t)
    if (failed > 0 && Number.isFinite(row.value)) {
      row.failed = failed
      row.verdict = `MISSED: ${failed} request(s) not answered 2xx`
    }
  }
  p99Row('auth-p99', `p99 at ${at}, auth − pipe proxy (ledger, metrics, logs as configured)`, auth)
  p99Row('governed-p99', `p99 at ${at}, governed − pipe proxy (ledger, metrics and info access log on)`, governed)
  add('translated-cpu-x-auth', 'CPU per request at saturation, translated ÷ auth', '×', 1.2, perRound(rs(translated, 'sat'), rs(auth, 'sat'), cpu))
  add('translated-stream-x-auth', 'CPU per streamed answer, translated ÷ auth', '×', 1.2, perRound(rs(translated, 'stream'), rs(auth, 'stream'), cpu))
  for (const [label, t] of [['auth', auth], ['governed', governed], ['translated', translated]]) {
    if (!t) continue
    add(`${label}-idle`, `RSS idle after start, ${label}`, 'MiB', 80, single(memory[t.name]?.idleMiB))
    // The saturation runs' own peak (VmHWM reset before each run); the whole run's peak when that is all there is.
    const m = memory[t.name] ?? {}
    const sat = Number.isFinite(m.satPeakMiB)
    add(`${label}-peak`, `RSS peak ${sat ? 'during saturation, 50 connections' : '(VmHWM) over the whole run'}, ${label}`, 'MiB', 150, single(sat ? m.satPeakMiB : m.peakMiB))
  }
  if (portkey) {
    add('portkey-cpu-x-pipe', `CPU per request at saturation, ${portkey.name} ÷ pipe proxy`, '×', null, perRound(rs(portkey, 'sat'), rs(pipe, 'sat'), cpu))
    add('portkey-stream-x-pipe', `CPU per streamed answer, ${portkey.name} ÷ pipe proxy`, '×', null, perRound(rs(portkey, 'stream'), rs(pipe, 'stream'), cpu))
    add('governed-cpu-x-portkey', `CPU per request at saturation, governed ÷ ${portkey.name}`, '×', null, perRound(rs(governed, 'sat'), rs(portkey, 'sat'), cpu))
  }
  return rows
}

function single(v) {
  return { value: Number.isFinite(v) ? v : NaN, min: v, max: v, rounds: Number.isFinite(v) ? [v] : [] }
}

/** The rows as a Markdown table: figure (median of rounds), range over rounds, limit, verdict. */
export function formatVerdicts(rows) {
  const num = (v, unit) => (Number.isFinite(v) ? (unit === '×' ? `${v.toFixed(2)}×` : unit === 'MiB' ? `${Math.round(v)} MiB` : `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(2)} ms`) : '—')
  const lines = ['| target | figure | range over rounds | limit | verdict |', '|---|---|---|---|---|']
  for (const r of rows) {
    const range = r.rounds.length > 1 ? `${num(r.min, r.unit)} … ${num(r.max, r.unit)} (${r.rounds.length})` : '—'
    const limit = r.limit === null ? '—' : `≤ ${r.unit === '×' ? `${r.limit}×` : r.unit === 'MiB' ? `${r.limit} MiB` : `${r.limit} ms`}`
    lines.push(`| ${r.what} | ${num(r.value, r.unit)} | ${range} | ${limit} | ${r.verdict.startsWith('MISSED') ? `**${r.verdict}**` : r.verdict} |`)
  }
  return lines.join('\n')
}
