#!/usr/bin/env node
// Where the CPU time goes, from a V8 .cpuprofile (`node --cpu-prof`): self time per function and per
// component (node core, each npm package, Sluice's own src/, GC), idle time left out.
// Run: node bench/profile-summary.mjs FILE.cpuprofile [--top 30] [--requests N]
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

export function componentOf(url, functionName) {
  if (!url) {
    if (functionName === '(garbage collector)') return 'GC'
    if (functionName === '(program)') return 'V8/native (program)'
    if (functionName === '(idle)') return 'idle'
    return `native ${functionName}`
  }
  if (url.startsWith('node:')) return 'node core (' + url.slice(5).split('/').slice(0, 2).join('/').replace(/^internal\//, 'internal/') + ')'
  const nm = url.lastIndexOf('/node_modules/')
  if (nm >= 0) {
    const rest = url.slice(nm + 14).split('/')
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]
  }
  const src = url.indexOf('/src/')
  if (src >= 0) return 'sluice ' + url.slice(src + 1)
  return url.replace(/^file:\/\//, '')
}

/** Coarser than componentOf: node core lumped into one line per top-level area (http, net/stream, …). */
function groupOf(component) {
  if (component.startsWith('node core')) {
    if (/http|_http/.test(component)) return 'node core: http'
    if (/stream|net|socket|tcp|buffer/.test(component)) return 'node core: net/streams'
    return 'node core: other'
  }
  if (component.startsWith('sluice ')) return 'sluice src'
  return component
}

export function summarize(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const self = new Map()
  const { samples, timeDeltas } = profile
  for (let i = 0; i < samples.length; i++) {
    const dt = timeDeltas[i + 1] ?? 0 // the delta after a sample is the time spent in it
    self.set(samples[i], (self.get(samples[i]) ?? 0) + dt)
  }
  const fns = new Map()
  const components = new Map()
  const groups = new Map()
  let busy = 0
  let idle = 0
  for (const [id, us] of self) {
    const { callFrame: cf } = byId.get(id)
    const comp = componentOf(cf.url, cf.functionName)
    if (comp === 'idle') { idle += us; continue }
    busy += us
    const file = cf.url ? cf.url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\//, '') : ''
    const key = `${cf.functionName || '(anonymous)'}  ${file}${cf.url ? `:${cf.lineNumber + 1}` : ''}`
    fns.set(key, (fns.get(key) ?? 0) + us)
    components.set(comp, (components.get(comp) ?? 0) + us)
    const g = groupOf(comp)
    groups.set(g, (groups.get(g) ?? 0) + us)
  }
  const sorted = (m) => [...m].sort((a, b) => b[1] - a[1])
  return { busyUs: busy, idleUs: idle, functions: sorted(fns), components: sorted(components), groups: sorted(groups) }
}

export function formatSummary(s, { top = 30, requests = 0 } = {}) {
  const pct = (us) => ((100 * us) / s.busyUs).toFixed(1).padStart(5) + '%'
  const per = (us) => (requests ? `${(us / requests).toFixed(1).padStart(7)} µs/req` : '')
  const lines = []
  lines.push(`busy ${(s.busyUs / 1e6).toFixed(2)} s, idle ${(s.idleUs / 1e6).toFixed(2)} s${requests ? `, ${requests} requests → ${(s.busyUs / requests).toFixed(1)} µs/req on the main thread (profiler on)` : ''}`)
  lines.push('', 'self time by area:')
  for (const [g, us] of s.groups.slice(0, 20)) lines.push(`  ${pct(us)} ${per(us)}  ${g}`)
  lines.push('', 'self time by component:')
  for (const [c, us] of s.components.slice(0, 25)) lines.push(`  ${pct(us)} ${per(us)}  ${c}`)
  lines.push('', `top ${top} functions by self time:`)
  for (const [f, us] of s.functions.slice(0, top)) lines.push(`  ${pct(us)} ${per(us)}  ${f}`)
  return lines.join('\n')
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '30' }, requests: { type: 'string', default: '0' } } })
  if (!positionals[0]) {
    process.stderr.write('usage: node bench/profile-summary.mjs FILE.cpuprofile [--top N] [--requests N]\n')
    process.exit(1)
  }
  const profile = JSON.parse(readFileSync(positionals[0], 'utf8'))
  process.stdout.write(formatSummary(summarize(profile), { top: Number(values.top), requests: Number(values.requests) }) + '\n')
}
