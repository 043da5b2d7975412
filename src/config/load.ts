import { readFile } from 'node:fs/promises'
import { checkFinopsConfig } from '../finops/config-check.ts'
import { sha256Hex } from '../core/sha256.ts'
import { LineCounter, parseDocument, type Node } from 'yaml'
import type { z } from 'zod'
import { configSchema, type GatewayConfig, type PolicyEntry } from './schema.ts'
import { hasProvider } from '../providers/index.ts'
import { checkMcpReferences } from '../mcp/config.ts'
import { checkFilesReferences } from '../files/config.ts'
import { checkPassthroughReferences } from '../passthrough/config.ts'
import { checkWorkersConfig } from '../cluster/config-check.ts'
import type { PolicyRegistry } from '../policies/types.ts'

export interface ConfigProblem {
  /** Where in the file: `backends[1].url`. */
  readonly path: string
  readonly line: number | null
  readonly message: string
}

export type LoadResult =
  | { readonly ok: true; readonly config: GatewayConfig }
  | { readonly ok: false; readonly problems: readonly ConfigProblem[] }

export class ConfigError extends Error {
  constructor(readonly problems: readonly ConfigProblem[], source = 'configuration') {
    super(`${source} is invalid:\n${formatProblems(problems)}`)
    this.name = 'ConfigError'
  }
}

export function formatProblems(problems: readonly ConfigProblem[]): string {
  return problems.map((p) => `  ${p.path || '(root)'}${p.line ? ` (line ${p.line})` : ''}: ${p.message}`).join('\n')
}

type Env = Readonly<Record<string, string | undefined>>
type PathSeg = string | number

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g

/**
 * Parses, substitutes `${NAME}` (and `${NAME:-default}`) in string values, validates the shape, then the
 * cross-references, then every policy's options with the policy's own schema. Reports every problem found.
 */
export function loadConfigText(text: string, opts: { env?: Env; registry: PolicyRegistry }): LoadResult {
  const env = opts.env ?? process.env
  const problems: ConfigProblem[] = []
  // Substitution happens on the text, before parsing, so a reference may stand anywhere a value can,
  // inside flow mappings too (`{ token: ${ADMIN_TOKEN} }`).
  const substituted = substituteEnv(text, env, (line, message) => problems.push({ path: '', line, message }))
  const lines = new LineCounter()
  const doc = parseDocument(substituted, { lineCounter: lines, prettyErrors: false, uniqueKeys: true })
  const lineOf = (path: readonly PathSeg[]): number | null => {
    const node = path.length ? (doc.getIn(path, true) as Node | undefined) : doc.contents
    const offset = node && (node as Node).range ? (node as Node).range![0] : undefined
    return offset === undefined ? null : lines.linePos(offset).line
  }
  for (const e of doc.errors) {
    problems.push({ path: '', line: e.linePos?.[0]?.line ?? null, message: `YAML: ${e.message.split('\n')[0]}` })
  }
  if (problems.length) return { ok: false, problems }

  const raw = doc.toJS() ?? {}
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    return { ok: false, problems: [{ path: '', line: 1, message: 'the configuration must be a mapping' }] }
  }

  const parsed = configSchema.safeParse(raw)
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(issueToProblem(issue, lineOf))
    return { ok: false, problems }
  }
  const config = parsed.data
  checkReferences(config, (path, message) => problems.push({ path: formatPath(path), line: lineOf(path), message }))
  const policyLists: Array<[PathSeg[], PolicyEntry[]]> = [[['policies'], config.policies]]
  config.products.forEach((p, i) => policyLists.push([['products', i, 'policies'], p.policies]))
  for (const [base, list] of policyLists) {
    list.forEach((entry, i) => {
      const [name, options] = Object.entries(entry)[0]!
      const factory = opts.registry.get(name)
      const path = [...base, i, name]
      if (!factory) {
        const known = [...opts.registry.keys()].join(', ') || 'none'
        problems.push({ path: formatPath(path), line: lineOf(path), message: `unknown policy "${name}" (available: ${known})` })
        return
      }
      const res = factory.schema.safeParse(options ?? {})
      if (!res.success) {
        for (const issue of res.error.issues) problems.push(issueToProblem(issue, lineOf, path))
      } else {
        list[i] = { [name]: res.data }
      }
    })
  }
  checkFinopsConfig(config, (path, message) => problems.push({ path: formatPath(path), line: lineOf(path), message }))
  checkWorkersConfig(config, (path, message) => problems.push({ path: formatPath(path), line: lineOf(path), message }))
  return problems.length ? { ok: false, problems } : { ok: true, config: deepFreeze(config) }
}

export async function loadConfigFile(file: string, opts: { env?: Env; registry: PolicyRegistry }): Promise<LoadResult> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    return { ok: false, problems: [{ path: '', line: null, message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}` }] }
  }
  return loadConfigText(text, opts)
}

/** Characters that would change the meaning of a plain YAML scalar. */
const YAML_SPECIAL = /[:#{}\[\],&*!|>'"%@`\n]|^\s|\s$|^$/

function substituteEnv(text: string, env: Env, report: (line: number, message: string) => void): string {
  return text.split('\n').map((line, i) => {
    const comment = commentStart(line)
    return line.replace(ENV_REF, (match, name: string, fallback: string | undefined, offset: number) => {
      if (comment !== -1 && offset > comment) return match
      const value = env[name] !== undefined && env[name] !== '' ? env[name]! : fallback
      if (value === undefined) {
        report(i + 1, `environment variable ${name} is not set`)
        return '""'
      }
      // A value that is a whole scalar and holds YAML syntax is quoted, so a secret cannot change the structure.
      const before = line.slice(0, offset).trimEnd()
      const after = line.slice(offset + match.length).trimStart()
      const wholeScalar = /[:,[{-]$/.test(before) && (after === '' || /^[,}\]#]/.test(after))
      return wholeScalar && YAML_SPECIAL.test(value) ? JSON.stringify(value) : value
    })
  }).join('\n')
}

/** Index of a `#` that starts a comment (at line start or after white space), or -1. */
function commentStart(line: string): number {
  const m = /(^|\s)#/.exec(line)
  return m ? m.index + m[1]!.length : -1
}

function issueToProblem(issue: z.core.$ZodIssue, lineOf: (p: readonly PathSeg[]) => number | null, prefix: PathSeg[] = []): ConfigProblem {
  const path = [...prefix, ...(issue.path as PathSeg[])]
  let message = issue.message
  if (issue.code === 'unrecognized_keys') message = `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`
  if (issue.code === 'invalid_union' && 'discriminator' in issue) message = `unknown ${String(issue.discriminator)}`
  if (issue.code === 'invalid_value' && 'values' in issue) message = `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`
  const keyPath = issue.code === 'unrecognized_keys' ? [...path, issue.keys[0]!] : path
  return { path: formatPath(path), line: lineOf(keyPath) ?? lineOf(path), message }
}

export function formatPath(path: readonly PathSeg[]): string {
  let out = ''
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out ? `.${seg}` : seg
  return out
}

function checkReferences(c: GatewayConfig, report: (path: PathSeg[], message: string) => void): void {
  const dup = (list: readonly { id?: string; name?: string }[], section: string, field: 'id' | 'name') => {
    const seen = new Map<string, number>()
    list.forEach((item, i) => {
      const v = item[field]!
      if (seen.has(v)) report([section, i, field], `duplicate ${field} "${v}" (first at ${section}[${seen.get(v)}])`)
      else seen.set(v, i)
    })
  }
  dup(c.backends, 'backends', 'id')
  dup(c.pools, 'pools', 'id')
  dup(c.models, 'models', 'name')
  dup(c.products, 'products', 'id')
  dup(c.consumers, 'consumers', 'id')

  const backends = new Set(c.backends.map((b) => b.id))
  const pools = new Set(c.pools.map((p) => p.id))
  const models = new Set(c.models.map((m) => m.name))
  const products = new Set(c.products.map((p) => p.id))

  c.backends.forEach((b, i) => {
    if (!hasProvider(b.type)) report(['backends', i, 'type'], `backend type "${b.type}" has no provider in this build`)
    if ((b.type === 'azure-openai' || b.type === 'openai-compatible') && !b.url) report(['backends', i], `a ${b.type} backend needs a url`)
    const sig = b.auth?.awsSigV4
    if (sig && (sig.accessKeyId === undefined) !== (sig.secretAccessKey === undefined)) report(['backends', i, 'auth', 'awsSigV4'], 'static AWS keys need both accessKeyId and secretAccessKey')
    if (b.type === 'bedrock' && !b.region && !b.auth?.awsSigV4?.region && !(b.url && b.auth?.apiKey)) report(['backends', i, 'region'], 'a bedrock backend needs a region (for its URL and its SigV4 signature)')
    if (b.type === 'vertex' && (!b.project || !b.region)) report(['backends', i], 'a vertex backend needs project and region')
    if (pools.has(b.id)) report(['backends', i, 'id'], `"${b.id}" is both a backend and a pool id; a model target would be ambiguous`)
  })
  c.pools.forEach((p, i) => {
    p.members.forEach((m, j) => {
      if (!backends.has(m.backend)) report(['pools', i, 'members', j, 'backend'], `unknown backend "${m.backend}"`)
    })
    const dupMember = p.members.findIndex((m, j) => p.members.findIndex((o) => o.backend === m.backend) !== j)
    if (dupMember !== -1) report(['pools', i, 'members', dupMember, 'backend'], `backend "${p.members[dupMember]!.backend}" is listed twice in this pool`)
  })
  c.models.forEach((m, i) => {
    const forms = [m.target, m.router, m.race, m.split].filter((f) => f !== undefined).length
    if (forms !== 1) report(['models', i], 'a model takes exactly one of target, router, race or split')
    if (m.target !== undefined && !backends.has(m.target) && !pools.has(m.target)) report(['models', i, 'target'], `unknown target "${m.target}" (no backend or pool has that id)`)
    const virtualOf = (name: string) => { const v = c.models.find((x) => x.name === name); return v !== undefined && v.target === undefined }
    const refs: [string, readonly string[]][] = [['router', m.router?.candidates ?? []], ['race', m.race?.models ?? []], ['split', (m.split ?? []).map((s) => s.model)]]
    for (const [form, names] of refs) {
      names.forEach((name, j) => {
        if (!models.has(name)) report(['models', i, form, j], `unknown model "${name}"`)
        // One level: a virtual model chooses among models that have targets, so a choice never loops.
        else if (virtualOf(name)) report(['models', i, form, j], `"${name}" is a router, race or split model itself; name models with a target`)
      })
    }
    if (m.split) {
      const total = m.split.reduce((a, s) => a + s.percent, 0)
      if (Math.abs(total - 100) > 1e-9) report(['models', i, 'split'], `split percentages add up to ${total}, not 100`)
    }
    m.fallbacks.forEach((f, j) => {
      if (!models.has(f)) report(['models', i, 'fallbacks', j], `unknown model "${f}"`)
      else if (f === m.name) report(['models', i, 'fallbacks', j], 'a model cannot fall back to itself')
      else if (c.models.find((x) => x.name === f)?.target === undefined) report(['models', i, 'fallbacks', j], `"${f}" is a router, race or split model; fallbacks name models with a target`)
    })
  })
  c.products.forEach((p, i) => {
    p.models?.forEach((m, j) => {
      if (!models.has(m)) report(['products', i, 'models', j], `unknown model "${m}"`)
    })
  })
  checkMcpReferences(c.mcp, backends, report)
  checkFilesReferences(c.files, new Map(c.backends.map((b) => [b.id, b])), products, report)
  checkPassthroughReferences(c.passthrough, backends, report)
  const digests = new Map<string, string>()
  c.consumers.forEach((cons, i) => {
    if (cons.product !== undefined && !products.has(cons.product)) report(['consumers', i, 'product'], `unknown product "${cons.product}"`)
    cons.keys.forEach((k, j) => {
      const digest = 'sha256' in k ? k.sha256.toLowerCase() : sha256Hex(k.value)
      const owner = digests.get(digest)
      if (owner !== undefined) report(['consumers', i, 'keys', j], `this key is already used by consumer "${owner}"`)
      else digests.set(digest, cons.id)
    })
  })
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value as object)) deepFreeze(v)
  }
  return value
}
