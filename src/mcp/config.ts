import { z } from 'zod'
import { parseDuration } from '../core/duration.ts'
import { QUOTA_PERIODS } from '../policies/limits-common/periods.ts'

// The config schema (src/config/schema.ts) imports this module, so its primitives are restated here rather
// than imported back (a cycle would meet them uninitialised).
const duration = z.union([z.number().nonnegative(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v
  const ms = parseDuration(v)
  if (ms === null) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not a duration (use a number with a unit: 250ms, 10s, 5m, 1h)` })
    return z.NEVER
  }
  return ms
})
const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, kib: 1024, mib: 1024 ** 2 }
const byteSize = z.union([z.number().int().positive(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]+)$/i.exec(v.trim())
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined
  if (!m || unit === undefined) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not a size (e.g. 1MiB, 512KB, 1048576)` })
    return z.NEVER
  }
  return Math.round(Number(m[1]) * unit)
})
const text = () => z.preprocess((v) => (typeof v === 'number' || typeof v === 'boolean' ? String(v) : v), z.string())

/**
 * The `mcp:` section (contract section 6) and the product-level `mcp: { allow, deny }`. Tool patterns are
 * globs over `<server-id>.<tool>` (the tool's name on the server that defines it, before any aggregate
 * prefix), so one rule covers a tool whether it is reached directly or through an aggregate.
 */

const serverId = z.string().min(1).max(64).regex(/^[A-Za-z0-9][A-Za-z0-9_-]*$/, 'an MCP server id uses letters, digits, "_" and "-" (it is a path segment and a tool-name prefix)')
const globs = z.array(z.string().min(1).max(256)).max(1000)

/** A per-tool request limit: calls per sliding window and/or a calendar-period quota, counted in the shared store. */
export const toolLimit = z.strictObject({
  /** Globs over `<server>.<tool>`; each matching tool has its own counter. */
  tools: z.union([z.string().min(1), globs.min(1)]).transform((v) => (typeof v === 'string' ? [v] : v)),
  /** Calls admitted per `per` (exact sliding window). */
  requests: z.number().int().positive().optional(),
  per: duration.default(60_000).refine((ms) => ms >= 1000, 'per is at least 1s'),
  /** Calls admitted per calendar period (UTC). */
  quota: z.number().int().positive().optional(),
  quotaPeriod: z.enum(QUOTA_PERIODS).default('monthly'),
  /** Who shares a counter: each consumer (default), each product, or everyone. */
  by: z.enum(['consumer', 'product', 'all']).default('consumer'),
}).refine((l) => l.requests !== undefined || l.quota !== undefined, 'a tool limit sets requests, quota or both')
export type ToolLimitConfig = z.infer<typeof toolLimit>

/** Message logging of tool arguments and results (redacted like `log-messages`). */
const messageLog = z.strictObject({
  sample: z.number().min(0).max(1).default(1),
  maxChars: z.number().int().positive().max(1_000_000).default(32_768),
  redact: z.array(z.string()).default([]),
  builtinRedaction: z.boolean().default(true),
})
export type McpLogConfig = z.infer<typeof messageLog>

/** Product-level governance: which tools its consumers see and call, and limits of its own. */
export const productMcp = z.strictObject({
  /** Absent = every tool; otherwise only tools matching one of these globs. */
  allow: globs.optional(),
  /** Tools matching one of these are hidden and refused, whatever `allow` says. */
  deny: globs.default([]),
  limits: z.array(toolLimit).default([]),
  log: messageLog.optional(),
})
export type ProductMcpConfig = z.infer<typeof productMcp>

const openapi = z.strictObject({
  /** A file path (relative to the working directory) or an http(s) URL of an OpenAPI 3 document (YAML or JSON). */
  spec: z.string().min(1),
  /** The Sluice backend the API is called through: its url, auth, timeouts, connection pool and breaker. */
  backend: z.string().min(1),
  /** operationIds (or `METHOD /path`) to expose; absent = every operation in the document. */
  operations: z.array(z.string().min(1)).optional(),
})

const upstream = z.strictObject({
  url: z.string().url(),
  /** The gateway's own credential to the server (never the consumer's): sent as `Authorization: Bearer`, or in `header`. */
  auth: z.strictObject({ apiKey: text().pipe(z.string().min(1)), header: z.string().regex(/^[A-Za-z0-9-]+$/).optional() }).optional(),
  headers: z.record(z.string(), text()).default({}),
  timeout: duration.default(60_000),
  connectTimeout: duration.default(5_000),
  maxConnections: z.number().int().positive().default(64),
})

const common = {
  id: serverId,
  description: z.string().max(2000).optional(),
  /** Limits that apply to every consumer of this server (besides their product's). */
  limits: z.array(toolLimit).default([]),
  /** Largest tool result relayed (bytes of its JSON); a larger one answers a JSON-RPC error. */
  maxResultBytes: byteSize.default(4 * 1024 * 1024),
}

export const mcpServer = z.union([
  z.strictObject({ ...common, openapi }),
  z.strictObject({ ...common, upstream }),
  z.strictObject({
    ...common,
    aggregate: z.array(serverId).min(1),
    /** Put between a member's id and its tool names (`weather_getForecast`). */
    separator: z.string().regex(/^[A-Za-z0-9_.-]{1,3}$/).default('_'),
    /** How long a member may take to list its tools before it is left out of this answer. */
    memberTimeout: duration.default(5_000),
  }),
])
export type McpServerConfig = z.infer<typeof mcpServer>

export const mcpSection = z.strictObject({
  servers: z.array(mcpServer).default([]),
  /** `stateful` issues Mcp-Session-Id sessions shared through the store; `stateless` serves every request on its own. */
  sessions: z.enum(['stateful', 'stateless']).default('stateful'),
  /** A session unused this long is forgotten. */
  sessionTtl: duration.default(3_600_000),
  /** Most JSON-RPC messages in one batch (larger batches are refused whole). */
  maxBatch: z.number().int().positive().max(1000).default(100),
  /** Authorization servers advertised in the Protected Resource Metadata (RFC 9728); default: the configured JWT issuers. */
  authorizationServers: z.array(z.string().url()).optional(),
}).default({ servers: [], sessions: 'stateful', sessionTtl: 3_600_000, maxBatch: 100 })
export type McpSectionConfig = z.infer<typeof mcpSection>

export function isOpenapi(s: McpServerConfig): s is Extract<McpServerConfig, { openapi: unknown }> {
  return 'openapi' in s
}
export function isUpstream(s: McpServerConfig): s is Extract<McpServerConfig, { upstream: unknown }> {
  return 'upstream' in s
}
export function isAggregate(s: McpServerConfig): s is Extract<McpServerConfig, { aggregate: unknown }> {
  return 'aggregate' in s
}

/** Cross-references of the `mcp:` section: unique ids, known backends and members, no aggregate cycles. */
export function checkMcpReferences(section: McpSectionConfig, backendIds: ReadonlySet<string>, report: (path: Array<string | number>, message: string) => void): void {
  const byId = new Map<string, McpServerConfig>()
  section.servers.forEach((s, i) => {
    if (byId.has(s.id)) report(['mcp', 'servers', i, 'id'], `MCP server id "${s.id}" is used twice`)
    byId.set(s.id, s)
  })
  section.servers.forEach((s, i) => {
    if (isOpenapi(s) && !backendIds.has(s.openapi.backend)) report(['mcp', 'servers', i, 'openapi', 'backend'], `unknown backend "${s.openapi.backend}"`)
    if (isAggregate(s)) {
      s.aggregate.forEach((m, j) => {
        const member = byId.get(m)
        if (!member) report(['mcp', 'servers', i, 'aggregate', j], `unknown MCP server "${m}"`)
        else if (isAggregate(member)) report(['mcp', 'servers', i, 'aggregate', j], `"${m}" is an aggregate; members are REST-derived or upstream servers`)
        if (m === s.id) report(['mcp', 'servers', i, 'aggregate', j], 'an aggregate cannot contain itself')
      })
      if (new Set(s.aggregate).size !== s.aggregate.length) report(['mcp', 'servers', i, 'aggregate'], 'a member is listed twice')
    }
  })
}
