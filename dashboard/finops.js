// Consumers, keys, budgets and the audit log: the admin API of the gateway that served this page, with the
// admin token from this tab's sessionStorage (shared with the traffic dashboard). Everything is built with
// DOM calls and textContent: names and metadata come from users and are never parsed as HTML.
const TOKEN_KEY = 'sluice.adminToken'
const $ = (sel) => document.querySelector(sel)

class Unauthorized extends Error {}

async function api(path, init = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY)
  const res = await fetch(path, {
    ...init,
    cache: 'no-store',
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(init.body ? { 'content-type': 'application/json' } : {}), 'x-sluice-actor': 'dashboard' },
  })
  if (res.status === 401) throw new Unauthorized()
  const body = await res.json().catch(() => ({}))
  if (!res.ok) throw new Error(body?.error?.message ?? `${path} answered ${res.status}`)
  return body
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v
    else if (k.startsWith('data-')) e.setAttribute(k, v)
    else if (k === 'onclick') e.addEventListener('click', v)
    else e[k] = v
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? '')))
  return e
}

function notice(text, isError = false) {
  const n = $('#notice')
  n.textContent = text
  n.className = `notice${isError ? ' error' : ''}`
  n.hidden = false
  n.dataset.kind = isError ? 'error' : 'ok'
}

function showLogin(refused) {
  $('#login').hidden = false
  $('#main').hidden = true
  $('#login-error').hidden = !refused
}

function rows(table, list, render, empty) {
  const tbody = $(`${table} tbody`)
  tbody.replaceChildren(...(list.length ? list.map(render) : [el('tr', {}, el('td', { colSpan: 8, class: 'muted' }, empty))]))
}

const when = (iso) => (iso ? new Date(iso).toLocaleString() : '–')
const usd = (v) => `$${Number(v).toFixed(v < 1 ? 4 : 2)}`

async function act(fn, ok) {
  try {
    await fn()
    if (ok) notice(ok)
    await render()
  } catch (err) {
    if (err instanceof Unauthorized) return showLogin(true)
    notice(err.message, true)
  }
}

async function renderConsumers() {
  const [{ consumers }, { products }] = await Promise.all([api('/admin/consumers'), api('/admin/products')])
  rows('#consumers-table', consumers, (c) => el('tr', { 'data-consumer': c.id },
    el('td', {}, c.id),
    el('td', {}, c.product ?? '–'),
    el('td', {}, el('span', { class: 'tag' }, c.source)),
    el('td', {}, c.configKeys + c.storedKeys),
    el('td', {}, c.suspended
      ? el('span', { class: 'tag suspended', title: c.suspended.reason, 'data-state': 'suspended' }, `suspended${c.suspended.until ? ` until ${when(c.suspended.until)}` : ''}`)
      : el('span', { class: 'tag active', 'data-state': 'active' }, 'active')),
    el('td', { class: 'actions' },
      c.suspended
        ? el('button', { type: 'button', 'data-action': 'reinstate', onclick: () => act(() => api(`/admin/consumers/${encodeURIComponent(c.id)}/reinstate`, { method: 'POST', body: '{}' }), `${c.id} reinstated`) }, 'Reinstate')
        : el('button', { type: 'button', 'data-action': 'suspend', onclick: () => act(() => api(`/admin/consumers/${encodeURIComponent(c.id)}/suspend`, { method: 'POST', body: JSON.stringify({ reason: 'suspended from the dashboard' }) }), `${c.id} suspended`) }, 'Suspend'),
      c.source === 'api'
        ? el('button', { type: 'button', 'data-action': 'delete', onclick: () => { if (confirm(`Delete consumer ${c.id} and its keys?`)) act(() => api(`/admin/consumers/${encodeURIComponent(c.id)}`, { method: 'DELETE' }), `${c.id} deleted`) } }, 'Delete')
        : '')), 'No consumers yet.')
  const sel = $('#consumer-form [name="product"]')
  const chosen = sel.value
  sel.replaceChildren(el('option', { value: '' }, '(no product)'), ...products.map((p) => el('option', { value: p.id }, p.id)))
  sel.value = chosen
  const keySel = $('#key-form [name="consumer"]')
  const chosenConsumer = keySel.value
  keySel.replaceChildren(...consumers.map((c) => el('option', { value: c.id }, c.id)))
  if (chosenConsumer) keySel.value = chosenConsumer
}

async function renderKeys() {
  await renderConsumers() // fills the consumer picker
  const { keys } = await api('/admin/keys')
  const now = Date.now()
  rows('#keys-table', keys, (k) => {
    const retired = k.revokedAt && Date.parse(k.revokedAt) <= now
    const state = retired ? 'revoked' : k.revokedAt ? `retiring ${when(k.revokedAt)}` : 'active'
    return el('tr', { 'data-key': k.id },
      el('td', {}, k.id), el('td', {}, k.consumerId), el('td', {}, `${k.prefix}…`), el('td', {}, k.label ?? ''), el('td', {}, when(k.createdAt)),
      el('td', { 'data-state': retired ? 'revoked' : 'active' }, state),
      el('td', { class: 'actions' }, retired ? '' : el('button', { type: 'button', 'data-action': 'revoke', onclick: () => { if (confirm(`Revoke ${k.id}?`)) act(() => api(`/admin/keys/${encodeURIComponent(k.id)}`, { method: 'DELETE' }), `${k.id} revoked`) } }, 'Revoke')))
  }, 'No stored keys. Keys in the configuration file are not listed.')
}

async function renderBudgets() {
  const { budgets } = await api('/admin/budgets')
  rows('#budgets-table', budgets, (b) => {
    const pct = Math.min(100, b.usedPercent)
    const bar = el('div', { class: `bar${pct >= 100 ? ' bad' : pct >= 80 ? ' warn' : ''}` }, el('i'))
    bar.firstChild.style.width = `${pct}%`
    return el('tr', { 'data-budget': `${b.scope}|${b.counter}` },
      el('td', {}, b.counter, el('div', { class: 'muted' }, b.consumers.join(', '))),
      el('td', {}, b.scope),
      el('td', { 'data-field': 'used' }, usd(b.usedUsd)),
      el('td', {}, usd(b.limitUsd)),
      el('td', { 'data-field': 'percent' }, bar, `${b.usedPercent}%`),
      el('td', {}, when(b.resetAt)),
      el('td', {}, b.onExceeded))
  }, 'No budget policy applies to any consumer.')
}

async function renderAudit() {
  const { entries } = await api('/admin/audit?limit=200')
  rows('#audit-table', entries, (e) => el('tr', { 'data-action': e.action },
    el('td', {}, when(e.ts)), el('td', {}, e.actor), el('td', {}, e.action), el('td', {}, e.target),
    el('td', {}, el('pre', { class: 'change' }, e.after === null ? 'deleted' : JSON.stringify(e.after, null, 1)))), 'Nothing recorded yet.')
}

const PAGES = { consumers: renderConsumers, keys: renderKeys, budgets: renderBudgets, audit: renderAudit }

function currentPage() {
  const name = location.hash.replace(/^#/, '')
  return name in PAGES ? name : 'consumers'
}

async function render() {
  const page = currentPage()
  for (const s of document.querySelectorAll('.page')) s.hidden = s.dataset.page !== page
  for (const a of document.querySelectorAll('[data-tab]')) a.classList.toggle('active', a.dataset.tab === page)
  try {
    await PAGES[page]()
    $('#login').hidden = true
    $('#main').hidden = false
    $('#status').textContent = `updated ${new Date().toLocaleTimeString()}`
    $('#status').className = 'pill live'
    document.body.dataset.page = page
    document.body.dataset.loaded = 'true'
  } catch (err) {
    if (err instanceof Unauthorized) return showLogin(Boolean(sessionStorage.getItem(TOKEN_KEY)))
    $('#status').textContent = `error: ${err.message}`
    $('#status').className = 'pill error'
  }
}

function init() {
  const hash = new URLSearchParams(location.hash.replace(/^#/, '').split('&').filter((p) => p.startsWith('token=')).join('&'))
  if (hash.get('token')) {
    sessionStorage.setItem(TOKEN_KEY, hash.get('token'))
    history.replaceState(null, '', `${location.pathname}#consumers`)
  }
  $('#login-form').addEventListener('submit', async (e) => {
    e.preventDefault()
    sessionStorage.setItem(TOKEN_KEY, $('#login-token').value.trim())
    $('#login-token').value = ''
    await render()
  })
  $('#consumer-form').addEventListener('submit', (e) => {
    e.preventDefault()
    const f = new FormData(e.target)
    const metadata = Object.fromEntries(String(f.get('metadata') ?? '').split(',').map((s) => s.trim()).filter(Boolean).map((kv) => [kv.split('=')[0].trim(), kv.split('=').slice(1).join('=').trim()]))
    act(() => api('/admin/consumers', { method: 'POST', body: JSON.stringify({ id: String(f.get('id')).trim(), product: f.get('product') || null, metadata }) }), `consumer ${f.get('id')} created`)
      .then(() => { if ($('#notice').dataset.kind === 'ok') e.target.reset() })
  })
  $('#key-form').addEventListener('submit', async (e) => {
    e.preventDefault()
    const f = new FormData(e.target)
    try {
      const made = await api('/admin/keys', { method: 'POST', body: JSON.stringify({ consumer: f.get('consumer'), label: f.get('label') || null }) })
      const box = $('#new-key')
      box.textContent = `New key for ${made.consumerId} (shown once, copy it now): ${made.key}`
      box.hidden = false
      notice(`key ${made.id} created`)
      await render()
    } catch (err) {
      if (err instanceof Unauthorized) return showLogin(true)
      notice(err.message, true)
    }
  })
  addEventListener('hashchange', () => { $('#notice').hidden = true; render() })
  setInterval(() => { if (!document.hidden && currentPage() === 'budgets') render() }, 5000)
  render()
}

init()
