import { z } from 'zod'
import { parseDuration } from '../core/duration.ts'
import { mcpSection, productMcp } from '../mcp/config.ts'

/** `250ms`, `10s`, `5m`… or a plain number of milliseconds. */
export const duration = z.union([z.number().nonnegative(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v
  const ms = parseDuration(v)
  if (ms === null) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not a duration (use a number with a unit: 250ms, 10s, 5m, 1h, 7d)` })
    return z.NEVER
  }
  return ms
})

const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 }
/** `10MiB`, `512KB`, or a plain number of bytes. */
export const byteSize = z.union([z.number().int().positive(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]+)$/i.exec(v.trim())
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined
  if (!m || unit === undefined) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not a size (e.g. 10MiB, 512KB, 1048576)` })
    return z.NEVER
  }
  return Math.round(Number(m[1]) * unit)
})

/** A string that may come from `${ENV}`: an all-digit secret parses as a YAML number and is taken back as text. */
export const text = () => z.preprocess((v) => (typeof v === 'number' || typeof v === 'boolean' ? String(v) : v), z.string())

const id = z.string().min(1).regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/, 'ids use letters, digits, ".", "_", ":" and "-"')

/** A policy entry: one key naming the policy, its options as the value. Options are validated by the policy's own schema. */
export const policyEntry = z.record(z.string(), z.unknown()).superRefine((v, ctx) => {
  const keys = Object.keys(v)
  if (keys.length !== 1) ctx.addIssue({ code: 'custom', message: `a policy entry has exactly one key (the policy name); found ${keys.length}` })
})
export type PolicyEntry = z.infer<typeof policyEntry>

const circuitBreaker = z.strictObject({
  failures: z.number().int().positive().default(3),
  window: duration.default(10_000),
  /** Upstream statuses that count as failures: single codes (`429`, "503") or inclusive ranges ("500-599"). */
  statusCodes: z.array(z.union([z.number().int().min(100).max(599), z.string().regex(/^\s*[1-5]\d\d\s*(-\s*[1-5]\d\d\s*)?$/, 'a status code ("429") or a range ("500-599")')])).default(['429', '500-599']),
  errorKinds: z.array(z.enum(['connect', 'reset', 'timeout'])).default(['connect', 'reset', 'timeout']),
  tripDuration: duration.default(30_000),
  acceptRetryAfter: z.boolean().default(true),
})
export type CircuitBreakerConfig = z.infer<typeof circuitBreaker>

/**
 * How the gateway authenticates to a backend (apps never hold these). One form per backend; `apiKey` goes in
 * the header the provider expects (Authorization, api-key, x-api-key, x-goog-api-key).
 */
const auth = z.strictObject({
  apiKey: text().pipe(z.string().min(1)).optional(),
  /** Azure managed identity ({} = system-assigned; clientId = user-assigned), through @azure/identity. */
  managedIdentity: z.strictObject({ clientId: text().optional(), resource: text().optional(), endpoint: z.string().url().optional() }).optional(),
  /** Entra ID client credentials (a service principal), through @azure/identity. */
  entra: z.strictObject({ tenantId: text(), clientId: text(), clientSecret: text(), authorityHost: z.string().url().optional(), scope: text().optional() }).optional(),
  /** AWS SigV4 ({} = the default credential chain: env, profile, web identity, container, IMDS; or static keys / a profile). */
  awsSigV4: z.strictObject({ accessKeyId: text().optional(), secretAccessKey: text().optional(), sessionToken: text().optional(), profile: text().optional(), region: text().optional(), service: text().optional() }).optional(),
  /** Google OAuth through google-auth-library ({} = application default credentials; or a service-account file). */
  google: z.strictObject({ credentialsFile: z.string().optional(), scopes: z.array(z.string()).optional(), tokenUrl: z.string().url().optional() }).optional(),
}).refine((a) => Object.values(a).filter((v) => v !== undefined).length <= 1, 'auth takes one form: apiKey, managedIdentity, entra, awsSigV4 or google')

/** OpenAI-compatible clouds and local servers known by name: base URL, key header and prices are built in. */
export const PRESET_BACKEND_TYPES = ['groq', 'mistral', 'cerebras', 'deepinfra', 'xai', 'together', 'fireworks', 'openrouter', 'deepseek', 'perplexity', 'ollama', 'vllm', 'lmstudio'] as const
export const BACKEND_TYPES = ['openai', 'azure-openai', 'openai-compatible', 'anthropic', 'gemini', 'vertex', 'bedrock', 'mock', ...PRESET_BACKEND_TYPES] as const

const backend = z.strictObject({
  id,
  type: z.enum(BACKEND_TYPES),
  url: z.string().url().optional(),
  auth: auth.optional(),
  /** public model name -> deployment/model name at this backend */
  models: z.record(z.string(), z.string()).optional(),
  apiVersion: text().default('2024-10-21'),
  /** Cloud placement: Vertex AI (project, region) and Bedrock (region). */
  project: text().optional(),
  region: text().optional(),
  headers: z.record(z.string(), text()).optional(),
  /** Time to the response headers (first byte). */
  timeout: duration.default(60_000),
  connectTimeout: duration.default(5_000),
  /** Longest silence allowed between two chunks of a streamed body. */
  idleTimeout: duration.default(60_000),
  maxConnections: z.number().int().positive().default(128),
  circuitBreaker: circuitBreaker.optional(),
  // mock backend only
  latency: duration.optional(),
  ttft: duration.optional(),
  tokensPerSecond: z.number().nonnegative().optional(),
  failRate: z.number().min(0).max(1).optional(),
  failStatus: z.number().int().min(400).max(599).optional(),
  retryAfter: duration.optional(),
  completionTokens: z.number().int().positive().optional(),
})
export type BackendConfig = z.infer<typeof backend>

const pool = z.strictObject({
  id,
  strategy: z.enum(['round-robin', 'weighted', 'priority', 'least-latency', 'least-busy', 'least-cost']).default('round-robin'),
  /** least-latency: the share of picks that go to a random member, so a recovered member is noticed. */
  explore: z.number().min(0).max(1).default(0.05),
  affinity: z.strictObject({ header: z.string().optional(), cookie: z.string().optional(), ttl: duration.default(3_600_000) })
    .refine((a) => Boolean(a.header) !== Boolean(a.cookie), 'affinity takes exactly one of header or cookie')
    .optional(),
  members: z.array(z.strictObject({
    backend: z.string(),
    priority: z.number().int().min(0).default(1),
    weight: z.number().positive().default(1),
  })).min(1),
})
export type PoolConfig = z.infer<typeof pool>

const model = z.strictObject({
  name: z.string().min(1),
  target: z.string().min(1),
  fallbacks: z.array(z.string()).default([]),
  hedge: z.strictObject({ after: duration, max: z.number().int().min(2).default(2) }).optional(),
  /** Failover limits across a pool's members and fallbacks. */
  maxAttempts: z.number().int().positive().default(3),
  deadline: duration.optional(),
})
export type ModelConfig = z.infer<typeof model>

const product = z.strictObject({
  id,
  /** Models its consumers may call; absent means all. */
  models: z.array(z.string()).optional(),
  policies: z.array(policyEntry).default([]),
  /** Most requests all of this product's consumers together may have in flight (overrides requestLimits.maxInflightPerProduct). */
  maxInflight: z.number().int().positive().optional(),
  /** MCP governance: tools its consumers may see and call (globs over `<server>.<tool>`), per-tool limits. */
  mcp: productMcp.optional(),
})
export type ProductConfig = z.infer<typeof product>

const consumerKey = z.union([
  z.strictObject({ sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, 'sha256 is 64 hex characters') }),
  z.strictObject({ value: text().pipe(z.string().min(8, 'a key value has at least 8 characters')) }),
])

const consumer = z.strictObject({
  id,
  product: z.string().optional(),
  keys: z.array(consumerKey).default([]),
  metadata: z.record(z.string(), text()).default({}),
  /** Most requests this consumer may have in flight at once (overrides requestLimits.maxInflightPerConsumer). */
  maxInflight: z.number().int().positive().optional(),
})
export type ConsumerConfig = z.infer<typeof consumer>

const store = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('memory') }),
  z.strictObject({
    type: z.literal('redis'),
    url: z.string().default('redis://127.0.0.1:6379'),
    keyPrefix: z.string().default('sluice:'),
    commandTimeout: duration.default(500),
    /** What a limit does while Redis is unreachable: `open` serves on a local fallback counter, `closed` refuses with 503. */
    onFailure: z.enum(['open', 'closed']).default('open'),
  }),
])
export type StoreConfig = z.infer<typeof store>

/** Background batching of ledger writes (defaults in src/ledger/queue.ts): flush by count, bytes or time; a bounded queue. */
const ledgerBatching = {
  batchSize: z.number().int().positive().optional(),
  batchBytes: byteSize.optional(),
  flushInterval: duration.optional(),
  /** Records held while the store is slow or down; past either bound new records are shed (and counted). */
  maxQueue: z.number().int().positive().optional(),
  maxQueueBytes: byteSize.optional(),
}

const ledger = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('sqlite'), path: z.string().default('.sluice/ledger.db'), ...ledgerBatching }),
  z.strictObject({ type: z.literal('postgres'), url: z.string(), tablePrefix: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,30}$/, 'a table prefix is letters, digits and "_"').optional(), ...ledgerBatching }),
  z.strictObject({ type: z.literal('none') }),
])
export type LedgerConfig = z.infer<typeof ledger>

export const configSchema = z.strictObject({
  listen: z.strictObject({
    host: z.string().default('0.0.0.0'),
    port: z.number().int().min(0).max(65535).default(8080),
    bodyLimit: byteSize.default(10 * 1024 * 1024),
    /** How long SIGTERM waits for requests and streams in flight. */
    shutdownGrace: duration.default(15_000),
    /** Longest a client may take to send a whole request, headers and body (408 past it). */
    requestTimeout: duration.default(30_000),
    /** Longest a client may take to send the request headers (408 past it). */
    headersTimeout: duration.default(10_000),
    /** Request bodies being read at once, all connections together (503 `server_busy` past it). */
    maxBodyBytesInFlight: byteSize.default(128 * 1024 * 1024),
    /** Deepest nesting of arrays and objects a JSON body may have (400 past it). */
    maxJsonDepth: z.number().int().min(2).max(10_000).default(128),
  }).default({ host: '0.0.0.0', port: 8080, bodyLimit: 10 * 1024 * 1024, shutdownGrace: 15_000, requestTimeout: 30_000, headersTimeout: 10_000, maxBodyBytesInFlight: 128 * 1024 * 1024, maxJsonDepth: 128 }),
  admin: z.strictObject({
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(8081),
    /** Without one, a random token is generated at start and printed once to stderr. */
    token: text().optional(),
    enabled: z.boolean().default(true),
    /** Host header values the admin plane answers besides loopback names and its own address (DNS-rebinding guard). */
    allowedHosts: z.array(z.string().min(1)).default([]),
    bodyLimit: byteSize.default(1024 * 1024),
  }).default({ host: '127.0.0.1', port: 8081, enabled: true, allowedHosts: [], bodyLimit: 1024 * 1024 }),
  /** What one request may ask for, and how many a consumer or product may have in flight (per process). */
  requestLimits: z.strictObject({
    maxInflightPerConsumer: z.number().int().positive().default(100),
    maxInflightPerProduct: z.number().int().positive().optional(),
    /** Ceiling on max_tokens / max_completion_tokens / max_output_tokens (400 past it). */
    maxOutputTokens: z.number().int().positive().default(1_000_000),
    /** Ceiling on `n`, the number of choices. */
    maxChoices: z.number().int().positive().default(128),
    /** Longest a streamed answer may last; past it the stream ends with a `stream_duration_exceeded` error event. */
    maxStreamDuration: duration.optional(),
  }).default({ maxInflightPerConsumer: 100, maxOutputTokens: 1_000_000, maxChoices: 128 }),
  /** Keys created at run time (`/admin/keys`, `sluice keys`) are looked up in the key store and cached per process. */
  auth: z.strictObject({
    /** How long a process trusts a stored key it looked up: the bound on seeing a revocation made elsewhere. Read at start. */
    keyCacheTtl: duration.default(30_000),
  }).default({ keyCacheTtl: 30_000 }),
  logging: z.strictObject({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  }).default({ level: 'info' }),
  store: store.default({ type: 'memory' }),
  ledger: ledger.default({ type: 'sqlite', path: '.sluice/ledger.db' }),
  backends: z.array(backend).default([]),
  pools: z.array(pool).default([]),
  models: z.array(model).default([]),
  products: z.array(product).default([]),
  consumers: z.array(consumer).default([]),
  policies: z.array(policyEntry).default([]),
  /** Metrics exposition and export; read at start (a reload keeps the running telemetry). */
  telemetry: z.strictObject({
    /** Most distinct label combinations per metric; past it new ones are recorded under `__overflow__`. */
    maxSeries: z.number().int().positive().default(2000),
    /** OTLP/HTTP export with the OpenTelemetry GenAI metric names; off unless an endpoint is given. */
    otlp: z.strictObject({
      endpoint: z.string().url(),
      interval: duration.default(15_000),
      timeout: duration.default(10_000),
      headers: z.record(z.string(), z.string()).default({}),
      serviceName: z.string().min(1).default('sluice'),
    }).optional(),
  }).default({ maxSeries: 2000 }),
  /** MCP gateway: REST APIs as MCP servers, passthrough and aggregation (src/mcp/). */
  mcp: mcpSection,
  /** Overrides and additions to the shipped price table (src/pricing/prices.ts), USD per 1M tokens. */
  pricing: z.strictObject({
    models: z.record(z.string(), z.strictObject({ input: z.number().nonnegative(), output: z.number().nonnegative().default(0), cached: z.number().nonnegative().optional() })).default({}),
  }).default({ models: {} }),
})
export type GatewayConfig = z.infer<typeof configSchema>
