// Small SVG charts for the dashboard: stacked areas, columns, a line and horizontal bars. No library and no
// network: everything is drawn from the data handed in, with native <title> tooltips.

const NS = 'http://www.w3.org/2000/svg'
export const PALETTE = ['#58a6ff', '#3fb950', '#d29922', '#bc8cff', '#ff7b72', '#39c5cf', '#e3b341', '#f778ba', '#8b949e', '#a5d6ff']

function el(name, attrs = {}, parent = null) {
  const e = document.createElementNS(NS, name)
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v))
  if (parent) parent.appendChild(e)
  return e
}

function title(parent, text) {
  const t = el('title', {}, parent)
  t.textContent = text
}

/** A round upper bound and tick step for an axis from 0 to max. */
function niceScale(max, ticks = 4) {
  if (!(max > 0)) return { top: 1, step: 0.25 }
  const raw = max / ticks
  const mag = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag
  return { top: Math.ceil(max / step) * step, step }
}

export function compact(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–'
  const a = Math.abs(n)
  if (a >= 1e9) return (n / 1e9).toFixed(1).replace(/\.0$/, '') + 'B'
  if (a >= 1e6) return (n / 1e6).toFixed(1).replace(/\.0$/, '') + 'M'
  if (a >= 1e4) return (n / 1e3).toFixed(1).replace(/\.0$/, '') + 'k'
  return String(Number(n.toFixed(2)))
}

export function usd(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–'
  if (n === 0) return '$0'
  if (Math.abs(n) < 0.01) return '$' + Number(n.toPrecision(2)).toFixed(Math.min(10, 1 - Math.floor(Math.log10(Math.abs(n)))))
  return '$' + n.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })
}

export function percent(x) {
  return x === null || x === undefined || Number.isNaN(x) ? '–' : (x * 100).toFixed(x >= 0.995 || x === 0 ? 0 : 1) + '%'
}

const hhmm = (t) => new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })

function frame(container, height) {
  container.replaceChildren()
  const width = Math.max(320, Math.round(container.clientWidth || 560))
  const svg = el('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img' }, container)
  return { svg, width, height }
}

function empty(container, text) {
  container.replaceChildren()
  const d = document.createElement('div')
  d.className = 'empty'
  d.textContent = text
  container.appendChild(d)
  container.dataset.rendered = 'empty'
}

function legend(container, names, colors) {
  const box = document.createElement('div')
  box.className = 'legend'
  names.forEach((n, i) => {
    const s = document.createElement('span')
    const sw = document.createElement('i')
    sw.style.background = colors[i]
    s.append(sw, document.createTextNode(n))
    box.appendChild(s)
  })
  container.appendChild(box)
}

function yAxis(svg, m, w, h, scale, fmt) {
  for (let v = 0; v <= scale.top + 1e-9; v += scale.step) {
    const y = m.t + h - (v / scale.top) * h
    el('line', { x1: m.l, x2: m.l + w, y1: y, y2: y, class: 'grid-line' }, svg)
    const t = el('text', { x: m.l - 6, y: y + 4, 'text-anchor': 'end' }, svg)
    t.textContent = fmt(v)
  }
}

function xAxis(svg, m, w, h, times) {
  const n = times.length
  const every = Math.max(1, Math.ceil(n / 6))
  for (let i = 0; i < n; i += every) {
    const x = m.l + (n === 1 ? w / 2 : (i / (n - 1)) * w)
    const t = el('text', { x, y: m.t + h + 16, 'text-anchor': 'middle' }, svg)
    t.textContent = hhmm(times[i])
  }
}

/** Stacked columns over time, one per bucket: series = [{ name, values }] aligned with times. */
export function stackedColumns(container, { times, series, format = compact, emptyText = 'No traffic in this window yet.' }) {
  const total = series.reduce((a, s) => a + s.values.reduce((b, v) => b + v, 0), 0)
  if (!times.length || total === 0) return empty(container, emptyText)
  const { svg, width, height } = frame(container, 230)
  const m = { l: 48, r: 10, t: 10, b: 24 }
  const w = width - m.l - m.r
  const h = height - m.t - m.b
  const sums = times.map((_, i) => series.reduce((a, s) => a + s.values[i], 0))
  const scale = niceScale(Math.max(...sums))
  yAxis(svg, m, w, h, scale, format)
  xAxis(svg, m, w, h, times)
  const slot = w / times.length
  const bw = Math.max(1, Math.min(40, slot * 0.72))
  const cx = (i) => m.l + (times.length === 1 ? w / 2 : (i / (times.length - 1)) * w)
  const y = (v) => m.t + h - (v / scale.top) * h
  const colors = series.map((_, i) => PALETTE[i % PALETTE.length])
  times.forEach((t, i) => {
    let base = 0
    series.forEach((s, si) => {
      const v = s.values[i]
      if (!v) return
      const r = el('rect', { x: cx(i) - bw / 2, y: y(base + v), width: bw, height: y(base) - y(base + v), fill: colors[si], 'data-series': s.name }, svg)
      title(r, `${hhmm(t)} · ${s.name}: ${format(v)} (all: ${format(sums[i])})`)
      base += v
    })
  })
  legend(container, series.map((s) => s.name), colors)
  container.dataset.rendered = 'true'
  container.dataset.series = series.map((s) => s.name).join(',')
}

/** Columns over time (requests) with a second, overlaid series (errors). */
export function columns(container, { times, values, overlay = null, names = ['requests', 'errors'], format = compact, emptyText = 'No requests in this window yet.' }) {
  if (!times.length || values.every((v) => !v)) return empty(container, emptyText)
  const { svg, width, height } = frame(container, 230)
  const m = { l: 48, r: 10, t: 10, b: 24 }
  const w = width - m.l - m.r
  const h = height - m.t - m.b
  const scale = niceScale(Math.max(...values))
  yAxis(svg, m, w, h, scale, format)
  xAxis(svg, m, w, h, times)
  const slot = w / times.length
  const bw = Math.max(1, slot * 0.7)
  const y = (v) => m.t + h - (v / scale.top) * h
  times.forEach((t, i) => {
    const cx = m.l + (times.length === 1 ? w / 2 : (i / (times.length - 1)) * w)
    if (values[i]) {
      const r = el('rect', { x: cx - bw / 2, y: y(values[i]), width: bw, height: m.t + h - y(values[i]), fill: PALETTE[0], rx: 1, 'data-series': names[0] }, svg)
      title(r, `${hhmm(t)} · ${names[0]}: ${format(values[i])}${overlay ? ` · ${names[1]}: ${format(overlay[i])}` : ''}`)
    }
    if (overlay && overlay[i]) {
      const r = el('rect', { x: cx - bw / 2, y: y(overlay[i]), width: bw, height: m.t + h - y(overlay[i]), fill: PALETTE[4], rx: 1, 'data-series': names[1] }, svg)
      title(r, `${hhmm(t)} · ${names[1]}: ${format(overlay[i])}`)
    }
  })
  legend(container, overlay ? names : names.slice(0, 1), [PALETTE[0], PALETTE[4]])
  container.dataset.rendered = 'true'
}

/** A ratio (0..1) over time; null values are gaps. */
export function ratioLine(container, { times, values, name, emptyText }) {
  if (!times.length || values.every((v) => v === null)) return empty(container, emptyText)
  const { svg, width, height } = frame(container, 230)
  const m = { l: 48, r: 10, t: 10, b: 24 }
  const w = width - m.l - m.r
  const h = height - m.t - m.b
  const scale = { top: 1, step: 0.25 }
  yAxis(svg, m, w, h, scale, (v) => Math.round(v * 100) + '%')
  xAxis(svg, m, w, h, times)
  const x = (i) => m.l + (times.length === 1 ? w / 2 : (i / (times.length - 1)) * w)
  const y = (v) => m.t + h - v * h
  let d = ''
  values.forEach((v, i) => {
    if (v === null) return
    d += `${d && values[i - 1] !== null ? ' L' : ' M'}${x(i)},${y(v)}`
    const c = el('circle', { cx: x(i), cy: y(v), r: 3, fill: PALETTE[1] }, svg)
    title(c, `${hhmm(times[i])} · ${name}: ${percent(v)}`)
  })
  el('path', { d: d.trim(), fill: 'none', stroke: PALETTE[1], 'stroke-width': 2, 'data-series': name }, svg)
  legend(container, [name], [PALETTE[1]])
  container.dataset.rendered = 'true'
}

/** Horizontal bars: rows = [{ label, value, note }], largest first. */
export function hbars(container, { rows, format = compact, emptyText = 'Nothing recorded yet.' }) {
  const shown = rows.filter((r) => r.value > 0).slice(0, 8)
  if (!shown.length) return empty(container, emptyText)
  const rowH = 26
  const { svg, width } = frame(container, shown.length * rowH + 8)
  const labelW = Math.min(160, Math.round(width * 0.3))
  const noteW = 120
  const w = width - labelW - noteW - 10
  const max = Math.max(...shown.map((r) => r.value))
  shown.forEach((r, i) => {
    const yy = 4 + i * rowH
    const name = el('text', { x: labelW - 8, y: yy + 15, 'text-anchor': 'end', class: 'bar-label' }, svg)
    name.textContent = r.label.length > 22 ? r.label.slice(0, 21) + '…' : r.label
    const bar = el('rect', { x: labelW, y: yy + 3, width: Math.max(2, (r.value / max) * w), height: rowH - 10, rx: 3, fill: PALETTE[i % PALETTE.length], 'data-series': r.label }, svg)
    title(bar, `${r.label}: ${format(r.value)}${r.note ? ' · ' + r.note : ''}`)
    const v = el('text', { x: labelW + Math.max(2, (r.value / max) * w) + 6, y: yy + 15 }, svg)
    v.textContent = format(r.value) + (r.note ? ` · ${r.note}` : '')
  })
  container.dataset.rendered = 'true'
  container.dataset.series = shown.map((r) => r.label).join(',')
}

/** Columns per label (days). */
export function labelledColumns(container, { labels, values, format = compact, emptyText }) {
  if (!labels.length || values.every((v) => !v)) return empty(container, emptyText)
  const { svg, width, height } = frame(container, 220)
  const m = { l: 70, r: 10, t: 10, b: 24 }
  const w = width - m.l - m.r
  const h = height - m.t - m.b
  const scale = niceScale(Math.max(...values))
  yAxis(svg, m, w, h, scale, format)
  const slot = w / labels.length
  const bw = Math.max(2, Math.min(48, slot * 0.7))
  const every = Math.max(1, Math.ceil(labels.length / 8))
  labels.forEach((l, i) => {
    const cx = m.l + slot * (i + 0.5)
    const top = m.t + h - (values[i] / scale.top) * h
    const r = el('rect', { x: cx - bw / 2, y: top, width: bw, height: m.t + h - top, rx: 2, fill: PALETTE[2], 'data-series': l }, svg)
    title(r, `${l}: ${format(values[i])}`)
    if (i % every === 0) {
      const t = el('text', { x: cx, y: m.t + h + 16, 'text-anchor': 'middle' }, svg)
      t.textContent = l.length === 10 ? l.slice(5) : l
    }
  })
  container.dataset.rendered = 'true'
}
