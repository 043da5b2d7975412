import { readFile } from 'node:fs/promises'
import { parse as parseYaml } from 'yaml'
import { request } from 'undici'

/**
 * OpenAPI 3 operations as MCP tools. Each exposed operation becomes one tool: its name from `operationId`
 * (or `method_path`), its description from summary/description, its input schema an object whose
 * properties are the path, query and header parameters plus `body` (the JSON request body), with every
 * local `$ref` resolved inline (a reference cycle becomes an open schema rather than an infinite one).
 */

export interface RestParam {
  readonly name: string
  readonly in: 'path' | 'query' | 'header'
  readonly required: boolean
}

export interface RestTool {
  readonly name: string
  readonly description: string
  readonly inputSchema: Record<string, unknown> & { type: 'object' }
  /** Declared only when the success response is a JSON object schema (MCP requires structuredContent to be an object). */
  readonly outputSchema?: Record<string, unknown> & { type: 'object' }
  readonly method: string
  readonly path: string
  readonly params: readonly RestParam[]
  /** The argument that carries the JSON body (`body`, or `requestBody` when a parameter is already called body). */
  readonly bodyArg: string | null
  readonly annotations: { readOnlyHint?: boolean; destructiveHint?: boolean; idempotentHint?: boolean }
}

export interface RestSpec {
  readonly tools: readonly RestTool[]
  /** Where the document says an API key goes (a `securitySchemes` entry of type apiKey in a header), if it does. */
  readonly apiKeyHeader: string | null
}

/** Request headers a tool argument may never set: the gateway's own credential and the framing are not the model's to choose. */
export const RESERVED_HEADERS: ReadonlySet<string> = new Set(['authorization', 'api-key', 'x-api-key', 'host', 'content-length', 'content-type', 'connection', 'transfer-encoding', 'cookie', 'proxy-authorization'])

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const
const MAX_SPEC_BYTES = 16 * 1024 * 1024
const MAX_DEPTH = 64

/** Reads the document from a file or an http(s) URL (YAML or JSON). */
export async function loadSpecText(spec: string, timeoutMs = 10_000): Promise<string> {
  if (/^https?:\/\//i.test(spec)) {
    const res = await request(spec, { headersTimeout: timeoutMs, bodyTimeout: timeoutMs, maxRedirections: 0 } as Parameters<typeof request>[1])
    if (res.statusCode !== 200) {
      await res.body.dump()
      throw new Error(`the OpenAPI document at ${spec} answered ${res.statusCode}`)
    }
    const len = Number(res.headers['content-length'] ?? 0)
    if (len > MAX_SPEC_BYTES) {
      res.body.destroy()
      throw new Error('the OpenAPI document is too large')
    }
    // Read through the cap: a chunked answer says nothing about its length beforehand.
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length
      if (size > MAX_SPEC_BYTES) {
        res.body.destroy()
        throw new Error('the OpenAPI document is too large')
      }
      chunks.push(chunk as Buffer)
    }
    return Buffer.concat(chunks).toString('utf8')
  }
  return await readFile(spec, 'utf8')
}

export function parseSpec(text: string, operations?: readonly string[]): RestSpec {
  const doc = parseYaml(text, { maxAliasCount: 100 }) as Record<string, unknown>
  if (!doc || typeof doc !== 'object' || typeof doc.openapi !== 'string' || !doc.openapi.startsWith('3.')) {
    throw new Error('not an OpenAPI 3 document (no "openapi: 3.x" field)')
  }
  const paths = (doc.paths ?? {}) as Record<string, Record<string, unknown>>
  const found = new Map<string, RestTool>()
  const keys: string[] = []
  for (const [path, item] of Object.entries(paths)) {
    const pathItem = deref(doc, item) as Record<string, unknown>
    const shared = (pathItem.parameters as unknown[] | undefined) ?? []
    for (const method of METHODS) {
      const op = pathItem[method] as Record<string, unknown> | undefined
      if (!op) continue
      const tool = toolOf(doc, method, path, op, shared)
      found.set(tool.name, tool)
      const alias = `${method.toUpperCase()} ${path}`
      found.set(alias, tool)
      keys.push(tool.name)
    }
  }
  let tools: RestTool[]
  if (operations) {
    tools = operations.map((o) => {
      const t = found.get(o)
      if (!t) throw new Error(`operation "${o}" is not in the OpenAPI document`)
      return t
    })
  } else {
    tools = keys.map((k) => found.get(k)!)
  }
  const names = new Set<string>()
  for (const t of tools) {
    if (names.has(t.name)) throw new Error(`two operations are both named "${t.name}"`)
    names.add(t.name)
  }
  return { tools, apiKeyHeader: apiKeyHeaderOf(doc) }
}

function toolOf(doc: Record<string, unknown>, method: string, path: string, op: Record<string, unknown>, shared: unknown[]): RestTool {
  const name = toolName(typeof op.operationId === 'string' ? op.operationId : `${method}${path}`)
  const properties: Record<string, unknown> = {}
  const required: string[] = []
  const params: RestParam[] = []
  const byKey = new Map<string, Record<string, unknown>>()
  // Operation parameters override path-level ones with the same name and location.
  for (const raw of [...shared, ...((op.parameters as unknown[] | undefined) ?? [])]) {
    const p = deref(doc, raw) as Record<string, unknown>
    if (typeof p.name === 'string' && typeof p.in === 'string') byKey.set(`${p.in}:${p.name}`, p)
  }
  for (const p of byKey.values()) {
    const where = p.in as string
    if (where !== 'path' && where !== 'query' && where !== 'header') continue // cookies are not a tool argument
    const pname = p.name as string
    // The gateway's credential and the framing are not the model's to set: such headers are not offered at all.
    if (where === 'header' && RESERVED_HEADERS.has(pname.toLowerCase())) continue
    const schema = resolveSchema(doc, p.schema ?? { type: 'string' }, 0, new Set())
    properties[pname] = typeof p.description === 'string' ? { ...schema, description: p.description } : schema
    const isRequired = where === 'path' || p.required === true
    if (isRequired) required.push(pname)
    params.push({ name: pname, in: where, required: isRequired })
  }
  let bodyArg: string | null = null
  const body = op.requestBody ? (deref(doc, op.requestBody) as Record<string, unknown>) : null
  const content = body?.content as Record<string, { schema?: unknown }> | undefined
  const json = content ? Object.entries(content).find(([type]) => /json/i.test(type))?.[1] : undefined
  if (json) {
    bodyArg = properties.body === undefined ? 'body' : 'requestBody'
    const schema = resolveSchema(doc, json.schema ?? {}, 0, new Set())
    properties[bodyArg] = typeof body?.description === 'string' ? { ...schema, description: body.description } : schema
    if (body?.required === true) required.push(bodyArg)
  }
  const summary = typeof op.summary === 'string' ? op.summary : ''
  const detail = typeof op.description === 'string' ? op.description : ''
  const description = [summary, detail].filter(Boolean).join('\n\n') || `${method.toUpperCase()} ${path}`
  const inputSchema = { type: 'object' as const, properties, ...(required.length ? { required } : {}) }
  const outputSchema = successSchema(doc, op)
  const readOnly = method === 'get' || method === 'head' || method === 'options'
  return {
    name, description: description.slice(0, 4000), inputSchema, outputSchema, method: method.toUpperCase(), path, params, bodyArg,
    annotations: { readOnlyHint: readOnly, destructiveHint: method === 'delete', idempotentHint: readOnly || method === 'put' || method === 'delete' },
  }
}

function successSchema(doc: Record<string, unknown>, op: Record<string, unknown>): (Record<string, unknown> & { type: 'object' }) | undefined {
  const responses = (op.responses ?? {}) as Record<string, unknown>
  const ok = responses['200'] ?? responses['201'] ?? responses['2XX']
  if (!ok) return undefined
  const res = deref(doc, ok) as Record<string, unknown>
  const content = res.content as Record<string, { schema?: unknown }> | undefined
  const json = content ? Object.entries(content).find(([type]) => /json/i.test(type))?.[1] : undefined
  if (!json?.schema) return undefined
  const schema = resolveSchema(doc, json.schema, 0, new Set())
  return schema.type === 'object' ? (schema as Record<string, unknown> & { type: 'object' }) : undefined
}

/** MCP tool names: letters, digits, `_`, `-`, `.`; at most 64 characters. */
function toolName(raw: string): string {
  const s = raw.replace(/[{}]/g, '').replace(/[^A-Za-z0-9_.-]+/g, '_').replace(/^_+|_+$/g, '')
  return (s || 'operation').slice(0, 64)
}

function deref(doc: Record<string, unknown>, node: unknown, depth = 0): unknown {
  let cur = node
  while (cur && typeof cur === 'object' && typeof (cur as { $ref?: unknown }).$ref === 'string') {
    if (depth++ > MAX_DEPTH) throw new Error('a $ref chain is too long')
    cur = pointer(doc, (cur as { $ref: string }).$ref)
  }
  return cur
}

function pointer(doc: Record<string, unknown>, ref: string): unknown {
  if (!ref.startsWith('#/')) throw new Error(`only local $refs are supported (found "${ref.slice(0, 100)}")`)
  let cur: unknown = doc
  for (const raw of ref.slice(2).split('/')) {
    const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~')
    if (!cur || typeof cur !== 'object' || !(key in (cur as object))) throw new Error(`$ref "${ref.slice(0, 100)}" points nowhere`)
    cur = (cur as Record<string, unknown>)[key]
  }
  return cur
}

/** A JSON Schema with refs inlined and OpenAPI 3.0's `nullable` turned into a JSON Schema type list. */
function resolveSchema(doc: Record<string, unknown>, node: unknown, depth: number, seen: Set<string>): Record<string, unknown> {
  if (!node || typeof node !== 'object' || Array.isArray(node)) return {}
  if (depth > MAX_DEPTH) return {}
  const ref = (node as { $ref?: unknown }).$ref
  if (typeof ref === 'string') {
    if (seen.has(ref)) return {} // a recursive type: leave the inner level open
    const next = new Set(seen).add(ref)
    return resolveSchema(doc, pointer(doc, ref), depth + 1, next)
  }
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(node as Record<string, unknown>)) {
    if (k === 'nullable' || k === 'xml' || k === 'externalDocs' || k === 'discriminator' || k === 'example') continue
    if (k === 'properties' && v && typeof v === 'object') {
      out.properties = Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([pk, pv]) => [pk, resolveSchema(doc, pv, depth + 1, seen)]))
    } else if ((k === 'items' || k === 'additionalProperties' || k === 'not') && v && typeof v === 'object') {
      out[k] = resolveSchema(doc, v, depth + 1, seen)
    } else if ((k === 'allOf' || k === 'anyOf' || k === 'oneOf') && Array.isArray(v)) {
      out[k] = v.map((s) => resolveSchema(doc, s, depth + 1, seen))
    } else {
      out[k] = v
    }
  }
  if ((node as { nullable?: unknown }).nullable === true && typeof out.type === 'string') out.type = [out.type, 'null']
  return out
}

function apiKeyHeaderOf(doc: Record<string, unknown>): string | null {
  const schemes = ((doc.components as Record<string, unknown> | undefined)?.securitySchemes ?? {}) as Record<string, unknown>
  for (const raw of Object.values(schemes)) {
    const s = deref(doc, raw) as Record<string, unknown>
    if (s.type === 'apiKey' && s.in === 'header' && typeof s.name === 'string') return s.name.toLowerCase()
  }
  return null
}
