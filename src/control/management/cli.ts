import { parseArgs } from 'node:util'
import type { LoadResult } from '../../config/load.ts'
import { formatProblems } from '../../config/load.ts'

type LoadFor = (configFlag: string | undefined) => Promise<{ result: LoadResult; file: string | undefined }>

export const MANAGEMENT_USAGE = `  sluice consumers list|get ID|create ID [--product P] [--metadata k=v]...|update ID [--product P|--no-product] [--metadata k=v]...
                   |delete ID|suspend ID [--until ISO] [--reason TEXT]|reinstate ID
  sluice products  list|get ID|create ID [--models a,b] [--policies JSON]|update ID [--models a,b|--all-models] [--policies JSON]|delete ID
  sluice keys      rotate KEY_ID [--grace 1h]
  sluice audit     [--target consumer:ID] [--limit N]
    (these call a running gateway's admin API: --admin-url URL, --token T; defaults from the config's admin
     section and SLUICE_ADMIN_TOKEN, so a change reaches every replica)
`

/** A user mistake or an admin API refusal: printed without a stack, exit status 1. */
export class CliError extends Error {}

/**
 * `sluice consumers|products|audit …` and `sluice keys rotate`: thin clients of the admin API, so changes
 * are validated, audited and announced to every replica exactly as when made over HTTP.
 */
export async function runManagementCommand(kind: 'consumers' | 'products' | 'keys' | 'audit', argv: string[], loadFor: LoadFor, out: { write(s: string): unknown } = process.stdout): Promise<void> {
  const [sub, ...rest] = kind === 'audit' ? ['list', ...argv] : argv
  const { values, positionals } = parseArgs({
    args: rest, allowPositionals: true,
    options: {
      config: { type: 'string' }, 'admin-url': { type: 'string' }, token: { type: 'string' }, actor: { type: 'string' },
      product: { type: 'string' }, 'no-product': { type: 'boolean' }, metadata: { type: 'string', multiple: true },
      until: { type: 'string' }, reason: { type: 'string' }, models: { type: 'string' }, 'all-models': { type: 'boolean' },
      policies: { type: 'string' }, grace: { type: 'string' }, target: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' },
    },
  })
  const { base, token } = await adminTarget(values['admin-url'], values.token, values.config, loadFor)
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json', 'x-sluice-actor': values.actor ?? `cli:${process.env.USER ?? 'unknown'}` },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).catch((err: Error) => { throw new CliError(`cannot reach the admin API at ${base}: ${err.message}`) })
    const text = await res.text()
    let json: any = null
    try { json = JSON.parse(text) } catch { json = text }
    if (!res.ok) throw new CliError(`${res.status}: ${json?.error?.message ?? text}`)
    return json
  }
  const id = () => {
    const v = positionals[0]
    if (!v) throw new CliError(`sluice ${kind} ${sub} needs an id`)
    return encodeURIComponent(v)
  }
  const print = (v: unknown): void => { out.write(`${JSON.stringify(v, null, 2)}\n`) }
  const metadata = () => values.metadata === undefined ? undefined : Object.fromEntries(values.metadata.map((kv) => {
    const i = kv.indexOf('=')
    if (i <= 0) throw new CliError(`--metadata takes name=value, not "${kv}"`)
    return [kv.slice(0, i), kv.slice(i + 1)]
  }))
  const productBody = () => {
    const b: Record<string, unknown> = {}
    if (values.models !== undefined) b.models = values.models.split(',').map((m) => m.trim()).filter(Boolean)
    if (values['all-models']) b.models = null
    if (values.policies !== undefined) {
      try { b.policies = JSON.parse(values.policies) } catch { throw new CliError('--policies is JSON: [{"budget":{"usd":100,"period":"monthly"}}]') }
    }
    return b
  }
  {
    if (kind === 'consumers') {
      switch (sub) {
        case 'list': {
          const { consumers } = await call('GET', '/admin/consumers')
          if (values.json) return print(consumers)
          for (const c of consumers) out.write(`${c.id}\t${c.product ?? '-'}\t${c.source}\t${c.suspended ? `suspended${c.suspended.until ? ` until ${c.suspended.until}` : ''}` : 'active'}\tkeys ${c.configKeys + c.storedKeys}\n`)
          if (consumers.length === 0) out.write('no consumers\n')
          return
        }
        case 'get': return print(await call('GET', `/admin/consumers/${id()}`))
        case 'create': return print(await call('POST', '/admin/consumers', { id: positionals[0], product: values.product ?? null, metadata: metadata() ?? {} }))
        case 'update': {
          const b: Record<string, unknown> = {}
          if (values.product !== undefined) b.product = values.product
          if (values['no-product']) b.product = null
          const m = metadata()
          if (m) b.metadata = m
          return print(await call('PATCH', `/admin/consumers/${id()}`, b))
        }
        case 'delete': return print(await call('DELETE', `/admin/consumers/${id()}`))
        case 'suspend': return print(await call('POST', `/admin/consumers/${id()}/suspend`, { until: values.until, reason: values.reason }))
        case 'reinstate': return print(await call('POST', `/admin/consumers/${id()}/reinstate`, {}))
      }
    } else if (kind === 'products') {
      switch (sub) {
        case 'list': {
          const { products } = await call('GET', '/admin/products')
          if (values.json) return print(products)
          for (const p of products) out.write(`${p.id}\t${p.source}\t${p.models ? p.models.join(',') : 'all models'}\t${p.policies.map((e: object) => Object.keys(e)[0]).join(',') || '-'}\n`)
          if (products.length === 0) out.write('no products\n')
          return
        }
        case 'get': return print(await call('GET', `/admin/products/${id()}`))
        case 'create': return print(await call('POST', '/admin/products', { id: positionals[0], ...productBody() }))
        case 'update': return print(await call('PATCH', `/admin/products/${id()}`, productBody()))
        case 'delete': return print(await call('DELETE', `/admin/products/${id()}`))
      }
    } else if (kind === 'keys' && sub === 'rotate') {
      const r = await call('POST', `/admin/keys/${id()}/rotate`, { grace: values.grace })
      out.write(`created ${r.id} for consumer ${r.consumerId}; ${r.oldKeyId} keeps working until ${r.oldKeyExpiresAt}\n${r.key}\n(this key is shown once)\n`)
      return
    } else if (kind === 'audit') {
      const q = new URLSearchParams()
      if (values.target) q.set('target', values.target)
      if (values.limit) q.set('limit', values.limit)
      const { entries } = await call('GET', `/admin/audit?${q}`)
      if (values.json) return print(entries)
      for (const e of entries) out.write(`${e.ts}\t${e.actor}\t${e.action}\t${e.target}\n`)
      return
    }
    throw new CliError(`unknown command "sluice ${kind} ${sub ?? ''}"\n${MANAGEMENT_USAGE}`)
  }
}

async function adminTarget(url: string | undefined, token: string | undefined, configFlag: string | undefined, loadFor: LoadFor): Promise<{ base: string; token: string | null }> {
  if (url) return { base: url.replace(/\/+$/, ''), token: token ?? process.env.SLUICE_ADMIN_TOKEN ?? null }
  const { result } = await loadFor(configFlag)
  if (!result.ok) throw new CliError(`configuration is invalid:\n${formatProblems(result.problems)}`)
  const a = result.config.admin
  const host = a.host === '0.0.0.0' ? '127.0.0.1' : a.host === '::' ? '[::1]' : a.host
  return { base: `http://${host}:${a.port}`, token: token ?? a.token ?? process.env.SLUICE_ADMIN_TOKEN ?? null }
}
