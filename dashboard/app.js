// The Sluice dashboard: polls the admin API of the gateway that served this page and redraws the charts.
// The admin token (when the gateway has one) comes from the URL fragment (#token=…) or the login form, is
// kept in sessionStorage for this tab only, and is sent as a bearer header; it is removed from the URL at once.
import { columns, compact, hbars, labelledColumns, percent, ratioLine, stackedColumns, usd } from './charts.js'

const TOKEN_KEY = 'sluice.adminToken'
const REFRESH_MS = 5000
const MAX_SERIES = 8 // per stacked chart; the rest is summed as "other"

const state = { paused: false, timer: null, last: null, ledger: null, ledgerBusy: false }
const $ = (sel) => document.querySelector(sel)

function takeTokenFromUrl() {
  const url = new URL(location.href)
  const hash = new URLSearchParams(url.hash.replace(/^#/, ''))
  const given = hash.get('token') ?? url.searchParams.get('token')
  if (given) {
    sessionStorage.setItem(TOKEN_KEY, given)
    url.hash = ''
    url.searchParams.delete('token')
    history.replaceState(null, '', url.pathname + url.search)
  }
}

class Unauthorized extends Error {}

async function api(path) {
  const token = sessionStorage.getItem(TOKEN_KEY)
  const res = await fetch(path, { headers: token ? { authorization: `Bearer ${token}` } : {}, cache: 'no-store' })
  if (res.status === 401) throw new Unauthorized()
  if (!res.ok) throw Object.assign(new Error(`${path} answered ${res.status}`), { status: res.status })
  return res.json()
}

function setStatus(text, kind) {
  const s = $('#status')
  s.textContent = text
  s.className = `pill ${kind}`
}

function showLogin(refused) {
  $('#login').hidden = false
  $('#main').hidden = true
  $('#login-error').hidden = !refused
  setStatus('token required', 'error')
}

function kpi(name, value) {
  document.querySelector(`[data-kpi="${name}"] .value`).textContent = value
}

const rangeMs = { '24h': 86_400_000, '7d': 7 * 86_400_000, '30d': 30 * 86_400_000 }

/** The ledger's report (contract section 4); null when this gateway has no ledger to ask. */
async function ledgerReport(by) {
  const since = new Date(Date.now() - rangeMs[$('#range').value]).toISOString()
  try {
    const body = await api(`/admin/usage?by=${by}&since=${encodeURIComponent(since)}&format=json`)
    state.ledgerBusy = false
    return Array.isArray(body.rows) ? body.rows : null
  } catch (err) {
    if (err instanceof Unauthorized) throw err
    // 503: the ledger is unreachable, or replaying its journal after a restart (its totals would be low).
    state.ledgerBusy = err.status === 503
    return null
  }
}

/** Turns per-bucket maps into at most MAX_SERIES series (largest first) plus "other". */
function seriesFrom(buckets, field) {
  const totals = new Map()
  for (const b of buckets) for (const [k, v] of Object.entries(b[field])) totals.set(k, (totals.get(k) ?? 0) + v)
  const names = [...totals.entries()].sort((a, b) => b[1] - a[1]).map(([k]) => k)
  const top = names.slice(0, MAX_SERIES)
  const rest = new Set(names.slice(MAX_SERIES))
  const label = (k) => (k === '' ? '(none)' : k === '__other__' ? 'other' : k)
  const series = top.map((k) => ({ name: label(k), values: buckets.map((b) => b[field][k] ?? 0) }))
  if (rest.size) series.push({ name: 'other', values: buckets.map((b) => Object.entries(b[field]).reduce((a, [k, v]) => a + (rest.has(k) ? v : 0), 0)) })
  return series
}

const MIN_BUCKETS = 15

function renderLive(summary) {
  // Minutes before this process started cannot hold data: leave them out (keeping a readable minimum).
  const started = Date.parse(summary.startedAt)
  const firstLive = summary.buckets.findIndex((b) => Date.parse(b.t) + summary.bucketSeconds * 1000 > started)
  const buckets = summary.buckets.slice(Math.max(0, Math.min(firstLive < 0 ? 0 : firstLive, summary.buckets.length - MIN_BUCKETS)))
  const times = buckets.map((b) => Date.parse(b.t))
  const sum = (f) => buckets.reduce((a, b) => a + b[f], 0)
  const requests = sum('requests')
  const errors = sum('errors')
  const hits = sum('cacheHits')
  const lookups = hits + sum('cacheMisses')
  const latencyWeighted = buckets.reduce((a, b) => a + (b.avgLatencyMs ?? 0) * b.requests, 0)
  kpi('requests', compact(requests))
  kpi('tokens', compact(sum('totalTokens')))
  kpi('error-rate', requests ? percent(errors / requests) : '–')
  kpi('cache-hit-rate', lookups ? percent(hits / lookups) : 'no lookups')
  kpi('latency', requests ? `${Math.round(latencyWeighted / requests)} ms` : '–')

  stackedColumns($('[data-chart="tokens-by-consumer"]'), { times, series: seriesFrom(buckets, 'byConsumer') })
  stackedColumns($('[data-chart="tokens-by-model"]'), { times, series: seriesFrom(buckets, 'byModel') })
  columns($('[data-chart="requests"]'), { times, values: buckets.map((b) => b.requests), overlay: buckets.map((b) => b.errors) })
  ratioLine($('[data-chart="cache"]'), {
    times,
    values: buckets.map((b) => (b.cacheHits + b.cacheMisses ? b.cacheHits / (b.cacheHits + b.cacheMisses) : null)),
    name: 'hit rate',
    emptyText: summary.cache.length ? 'No cache lookups in this window.' : 'No cache policy has looked anything up yet.',
  })
}

function renderLedger(summary, byConsumer, byModel, byDay) {
  const note = (name, fromLedger) => {
    document.querySelector(`[data-source="${name}"]`).textContent = fromLedger ? `· ledger, ${$('#range').value}` : state.ledgerBusy ? '· this instance since start (the ledger is unreachable or replaying its journal; retrying)' : '· this instance since start (no ledger)'
  }
  if (byConsumer) {
    hbars($('[data-chart="top-consumers"]'), { rows: byConsumer.map((r) => ({ label: r.key, value: r.totalTokens, note: `${usd(r.costUsd)} · ${compact(r.requests)} req` })).sort((a, b) => b.value - a.value) })
  } else {
    hbars($('[data-chart="top-consumers"]'), { rows: summary.totals.byConsumer.map((r) => ({ label: r.key || '(none)', value: r.totalTokens, note: `${compact(r.requests)} req` })) })
  }
  note('consumers', !!byConsumer)
  if (byModel) {
    hbars($('[data-chart="cost-by-model"]'), { rows: byModel.map((r) => ({ label: r.key, value: r.costUsd, note: `${compact(r.totalTokens)} tok` })).sort((a, b) => b.value - a.value), format: usd, emptyText: 'No priced usage in this range.' })
  } else {
    hbars($('[data-chart="cost-by-model"]'), { rows: summary.totals.byModel.map((r) => ({ label: r.key, value: r.totalTokens, note: 'tokens' })), emptyText: 'No usage yet.' })
  }
  note('models', !!byModel)
  if (byDay) {
    const rows = [...byDay].sort((a, b) => a.key.localeCompare(b.key))
    labelledColumns($('[data-chart="cost-by-day"]'), { labels: rows.map((r) => r.key), values: rows.map((r) => r.costUsd), format: usd, emptyText: 'No priced usage in this range.' })
  } else {
    labelledColumns($('[data-chart="cost-by-day"]'), { labels: [], values: [], emptyText: 'The usage ledger is not available on this gateway.' })
  }
  note('days', !!byDay)
  renderSavings(byConsumer, byDay)
  note('saved', !!byDay)
  const cost = byConsumer ? byConsumer.reduce((a, r) => a + (r.costUsd ?? 0), 0) : null
  kpi('cost', cost === null ? 'n/a' : usd(cost))
}

/** What the cache hits avoided paying (the ledger's savedUsd), in total and per day. */
function renderSavings(byConsumer, byDay) {
  const saved = byConsumer ? byConsumer.reduce((a, r) => a + (r.savedUsd ?? 0), 0) : null
  const hits = byConsumer ? byConsumer.reduce((a, r) => a + (r.cacheHits ?? 0), 0) : null
  kpi('saved', saved === null ? 'n/a' : usd(saved))
  document.querySelector('[data-kpi-sub="saved"]').textContent = hits === null ? 'ledger range' : `${compact(hits)} cache hit${hits === 1 ? '' : 's'} · ledger range`
  const box = $('[data-chart="saved-by-day"]')
  if (!byDay) return labelledColumns(box, { labels: [], values: [], emptyText: 'The usage ledger is not available on this gateway.' })
  const rows = [...byDay].sort((a, b) => a.key.localeCompare(b.key))
  labelledColumns(box, { labels: rows.map((r) => r.key), values: rows.map((r) => r.savedUsd ?? 0), format: usd, emptyText: 'No cache hit on a priced model in this range.' })
}

const STATE_NAMES = { 0: 'closed', 1: 'half-open', 2: 'open' }

function renderBackends(summary, backends) {
  const box = $('[data-chart="backends"]')
  box.replaceChildren()
  const stats = new Map(summary.totals.byBackend.map((r) => [r.key, r]))
  const list = backends?.backends ?? Object.keys(summary.circuit).map((id) => ({ id }))
  for (const b of list) {
    // /admin/backends reads the breaker store (shared by every instance): it wins over this instance's last report.
    const reported = summary.circuit[b.id]
    const st = typeof b.state === 'string' ? b.state : reported !== undefined ? STATE_NAMES[reported] : 'closed'
    const s = stats.get(b.id)
    const card = document.createElement('div')
    card.className = `backend ${st}`
    card.dataset.backend = b.id
    const name = document.createElement('div')
    name.className = 'name'
    const dot = document.createElement('span')
    dot.className = 'dot'
    name.append(dot, document.createTextNode(b.id))
    const line = document.createElement('div')
    line.className = 'state'
    const until = b.openUntil ? ` until ${new Date(b.openUntil).toLocaleTimeString()}` : ''
    const trips = b.trips ? ` · ${b.trips} trip${b.trips === 1 ? '' : 's'}` : ''
    line.textContent = `${st}${until}${b.type ? ' · ' + b.type : ''}${trips}`
    if (b.lastFailure) line.title = `last failure ${b.lastFailure.at}: ${b.lastFailure.reason}`
    const traffic = document.createElement('div')
    traffic.className = 'state'
    traffic.textContent = s ? `${compact(s.requests)} req · ${s.requests ? percent(s.errors / s.requests) : '–'} errors · ${compact(s.totalTokens)} tok` : 'no traffic yet'
    card.append(name, line, traffic)
    box.appendChild(card)
  }
  box.dataset.rendered = 'true'
}

async function refresh() {
  try {
    const window = $('#window').value
    const [summary, backends] = await Promise.all([api(`/admin/metrics/summary?window=${window}`), api('/admin/backends').catch((e) => { if (e instanceof Unauthorized) throw e; return null })])
    const [byConsumer, byModel, byDay] = await Promise.all([ledgerReport('consumer'), ledgerReport('model'), ledgerReport('day')])
    $('#login').hidden = true
    $('#main').hidden = false
    renderLive(summary)
    renderLedger(summary, byConsumer, byModel, byDay)
    renderBackends(summary, backends)
    state.last = Date.now()
    setStatus(`live · updated ${new Date().toLocaleTimeString()}`, 'live')
    document.body.dataset.loaded = 'true'
  } catch (err) {
    if (err instanceof Unauthorized) return showLogin(Boolean(sessionStorage.getItem(TOKEN_KEY)))
    setStatus(`error: ${err.message}`, 'error')
  }
}

function schedule() {
  clearTimeout(state.timer)
  if (!state.paused) state.timer = setTimeout(async () => { await refresh(); schedule() }, REFRESH_MS)
}

function init() {
  takeTokenFromUrl()
  $('#login-form').addEventListener('submit', async (e) => {
    e.preventDefault()
    sessionStorage.setItem(TOKEN_KEY, $('#login-token').value.trim())
    $('#login-token').value = ''
    await refresh()
  })
  $('#pause').addEventListener('click', () => {
    state.paused = !state.paused
    $('#pause').textContent = state.paused ? 'Resume' : 'Pause'
    if (state.paused) setStatus('paused', '')
    else { refresh(); schedule() }
  })
  for (const sel of ['#window', '#range']) $(sel).addEventListener('change', () => refresh())
  let resizeTimer = null
  addEventListener('resize', () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(refresh, 200) })
  refresh().then(schedule)
}

init()
