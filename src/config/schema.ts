import { z } from 'zod'
import { duration, byteSize, text } from './schema-units.ts'
import { authSchema } from '../auth/jwt/config.ts'
import { expiryDate, ipFilterSchema } from '../auth/schema.ts'
import { parseDuration } from '../core/duration.ts'
import { mcpSection, productMcp } from '../mcp/config.ts'
import { realtimeSection } from '../realtime/config.ts'
import { filesSection } from '../files/config.ts'
import { passthroughSection } from '../passthrough/config.ts'
import { responsesSection } from '../responses/config.ts'

export { duration, byteSize, text } from './schema-units.ts'

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
  /** OAuth 2.0 client credentials the gateway holds: tokens from `tokenUrl`, cached for their lifetime (providers/credentials/oauth-client.ts). */
  oauth: z.strictObject({
    tokenUrl: z.string().url(),
    clientId: text().pipe(z.string().min(1)),
    clientSecret: text().pipe(z.string().min(1)),
    scope: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
    audience: text().optional(),
    resource: text().optional(),
    /** `basic`: HTTP Basic (RFC 6749 2.3.1, what every server supports); `body`: client_id/client_secret in the form. */
    clientAuth: z.enum(['basic', 'body']).default('basic'),
    /** Refresh this long before expiry (half the lifetime for tokens shorter than twice this). */
    refreshMargin: duration.default(60_000),
  }).optional(),
}).refine((a) => Object.values(a).filter((v) => v !== undefined).length <= 1, 'auth takes one form: apiKey, managedIdentity, entra, awsSigV4, google or oauth')

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
  /** Vertex AI: the publisher of the models (default: `anthropic` for claude-* model ids, `google` otherwise). */
  publisher: z.enum(['google', 'anthropic']).optional(),
  headers: z.record(z.string(), text()).optional(),
  /**
   * OpenAI Responses requests: `native` passes them through (default where the provider serves the Responses API),
   * `translate` sends them as chat completions with the conversation kept by the gateway (chat-only servers).
   */
  responses: z.enum(['native', 'translate']).optional(),
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

/** What a model can take, for router models choosing among candidates (absent: not known to, so never chosen for it). */
const capabilities = z.strictObject({
  contextWindow: z.number().int().positive().optional(),
  tools: z.boolean().default(false),
  images: z.boolean().default(false),
  jsonSchema: z.boolean().default(false),
  reasoning: z.boolean().default(false),
})
export type ModelCapabilities = z.infer<typeof capabilities>

const model = z.strictObject({
  name: z.string().min(1),
  /** A pool or backend id. Exactly one of target, router, race or split. */
  target: z.string().min(1).optional(),
  capabilities: capabilities.optional(),
  /** A virtual model: each request goes to the cheapest (or fastest measured) candidate able to take it. */
  router: z.strictObject({
    candidates: z.array(z.string().min(1)).min(1),
    prefer: z.enum(['cheapest', 'fastest']).default('cheapest'),
  }).optional(),
  /** A virtual model: all its models at once, the first acceptable answer wins, the others are cancelled and billed. */
  race: z.strictObject({
    models: z.array(z.string().min(1)).min(2),
    accept: z.strictObject({
      /** Valid JSON against the request's json_schema response format, when it has one. */
      jsonSchema: z.boolean().default(true),
      /** An answer that refuses (a `refusal`) is not acceptable. */
      noRefusal: z.boolean().default(true),
    }).default({ jsonSchema: true, noRefusal: true }),
  }).optional(),
  /** A virtual model: a percentage split between models, each consumer kept on its side (A/B, canary). */
  split: z.array(z.strictObject({ model: z.string().min(1), percent: z.number().min(0).max(100) })).min(1).optional(),
  /** Retries of the same member after a short retry-after when no other member is left (jittered). */
  retry: z.strictObject({ attempts: z.number().int().min(0).max(5).default(2), maxWait: duration.default(2_000) }).optional(),
  fallbacks: z.array(z.string()).default([]),
  hedge: z.strictObject({ after: duration, max: z.number().int().min(2).default(2) }).optional(),
  /** Failover limits across a pool's members and fallbacks. */
  maxAttempts: z.number().int().positive().default(3),
  deadline: duration.optional(),
})
export type ModelConfig = z.infer<typeof model>

export const productSchema = z.strictObject({
  id,
  /** Models its consumers may call; absent means all. */
  models: z.array(z.string()).optional(),
  policies: z.array(policyEntry).default([]),
  /** Most requests all of this product's consumers together may have in flight (overrides requestLimits.maxInflightPerProduct). */
  maxInflight: z.number().int().positive().optional(),
  /** Which credentials its consumers may present: gateway keys, JWTs (`auth.jwt`), or either. */
  auth: z.enum(['key', 'jwt', 'any']).default('any'),
  ipFilter: ipFilterSchema.optional(),
  /** MCP governance: tools its consumers may see and call (globs over `<server>.<tool>`), per-tool limits. */
  mcp: productMcp.optional(),
  /** What its consumers may ask of the gateway for debugging: `timings` (`x-sluice-debug: timings` → `Server-Timing`). */
  debug: z.strictObject({ timings: z.boolean().default(false) }).optional(),
})
export type ProductConfig = z.infer<typeof productSchema>

const consumerKey = z.union([
  z.strictObject({ sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, 'sha256 is 64 hex characters'), expires: expiryDate.optional() }),
  z.strictObject({ value: text().pipe(z.string().min(8, 'a key value has at least 8 characters')), expires: expiryDate.optional() }),
])

export const consumerSchema = z.strictObject({
  id,
  product: z.string().optional(),
  keys: z.array(consumerKey).default([]),
  metadata: z.record(z.string(), text()).default({}),
  /** Most requests this consumer may have in flight at once (overrides requestLimits.maxInflightPerConsumer). */
  maxInflight: z.number().int().positive().optional(),
})
export type ConsumerConfig = z.infer<typeof consumerSchema>

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

/**
 * The ledger's crash journal (issue 18): every record is appended here before the client sees the answer
 * and replayed at start from the last checkpoint. On by default (`false` turns it off); `dir` defaults to
 * `journal/` beside the SQLite file (`.sluice/journal` with PostgreSQL).
 */
const ledgerJournal = z.union([
  z.literal(false),
  z.strictObject({
    dir: z.string().min(1).optional(),
    /** Bound on the journal's files; past it new records are shed and counted, as the queue does. */
    maxBytes: byteSize.optional(),
    /** Size at which a journal segment is closed and a new one started. */
    segmentBytes: byteSize.optional(),
    /** fdatasync interval (survives a machine crash, not just a process crash); 0: never, the default. */
    fsyncInterval: duration.optional(),
  }),
]).optional()

const ledger = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('sqlite'), path: z.string().default('.sluice/ledger.db'), ...ledgerBatching, journal: ledgerJournal }),
  z.strictObject({ type: z.literal('postgres'), url: z.string(), tablePrefix: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,30}$/, 'a table prefix is letters, digits and "_"').optional(), ...ledgerBatching, journal: ledgerJournal }),
  z.strictObject({ type: z.literal('none') }),
])
export type LedgerConfig = z.infer<typeof ledger>

const webhookSchema = z.strictObject({
  id,
  url: z.string().url().refine((u) => /^https?:\/\//i.test(u), 'a webhook url is http:// or https://'),
  secret: text().pipe(z.string().min(16, 'a webhook secret has at least 16 characters')),
})
export type WebhookConfig = z.infer<typeof webhookSchema>

const webhookDeliverySchema = z.strictObject({
  /**
   * Addresses (CIDR or single IPs) webhooks may be sent to. Default: public addresses only — loopback,
   * private, link-local and other reserved ranges are refused unless listed here (no SSRF into the network).
   */
  allow: z.array(z.string()).default([]),
  /** Per attempt, headers and body. */
  timeout: duration.default(5_000),
  maxAttempts: z.number().int().min(1).max(20).default(8),
  /** First retry delay; doubles each attempt (with jitter), capped at 5 minutes. */
  backoff: duration.default(1_000),
  /** Events held for delivery; past it the oldest are dropped (and logged). */
  maxQueue: z.number().int().positive().default(10_000),
})
export type WebhookDeliveryConfig = z.infer<typeof webhookDeliverySchema>

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
    /** Worker processes sharing the port (node:cluster); more than one needs a shared store (src/cluster/). Read at start. */
    workers: z.number().int().min(1).max(64).default(1),
  }).default({ host: '0.0.0.0', port: 8080, bodyLimit: 10 * 1024 * 1024, shutdownGrace: 15_000, requestTimeout: 30_000, headersTimeout: 10_000, maxBodyBytesInFlight: 128 * 1024 * 1024, maxJsonDepth: 128, workers: 1 }),
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
  logging: z.strictObject({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  }).default({ level: 'info' }),
  store: store.default({ type: 'memory' }),
  ledger: ledger.default({ type: 'sqlite', path: '.sluice/ledger.db' }),
  backends: z.array(backend).default([]),
  pools: z.array(pool).default([]),
  models: z.array(model).default([]),
  products: z.array(productSchema).default([]),
  consumers: z.array(consumerSchema).default([]),
  policies: z.array(policyEntry).default([]),
  /** Consumer identity besides gateway keys: JWT / OIDC issuers. */
  auth: authSchema,
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
    /** OpenTelemetry spans (GenAI conventions) per request and per upstream try, exported with `otlp`'s settings. */
    tracing: z.strictObject({
      /** Share of new traces recorded (by trace id); a client's sampled `traceparent` decides for its own request. */
      sample: z.number().min(0).max(1).default(1),
      /** Follow the client's sampled flag (true), or apply `sample` to every request (false). */
      parentBased: z.boolean().default(true),
      /** Full traces URL; default: the OTLP endpoint's `/v1/traces`. */
      endpoint: z.string().url().optional(),
      /** Longest a finished span waits before its batch is exported. */
      interval: duration.default(5_000),
      /** Most finished spans waiting for export; past it new ones are dropped (never the request). */
      maxQueue: z.number().int().positive().default(2048),
    }).optional(),
  }).refine((t) => !t.tracing || t.otlp !== undefined, { message: 'telemetry.tracing needs telemetry.otlp (its endpoint, headers and timeout)', path: ['tracing'] })
    .default({ maxSeries: 2000 }),
  /** Alert receivers (budget and quota thresholds), HMAC-signed with `secret` (src/finops/webhooks.ts). */
  webhooks: z.array(webhookSchema).default([]),
  /** How webhooks are delivered: which addresses they may reach, timeouts and retries. */
  webhookDelivery: webhookDeliverySchema.default({ allow: [], timeout: 5_000, maxAttempts: 8, backoff: 1_000, maxQueue: 10_000 }),
  /** Consumers and products managed at run time (stored beside the ledger), kept in step across replicas. */
  management: z.strictObject({
    /** Full re-read of the stored consumers and products, healing a missed change notification. */
    resync: duration.default(5_000),
  }).default({ resync: 5_000 }),
  /** MCP gateway: REST APIs as MCP servers, passthrough and aggregation (src/mcp/). */
  mcp: mcpSection,
  /** Realtime WebSocket sessions (src/realtime/): idle and maximum durations, largest client message. */
  realtime: realtimeSection,
  /** Which backend serves /v1/files and /v1/batches, and the upload limit (src/files/). */
  files: filesSection,
  /** Native provider APIs forwarded under a prefix (src/passthrough/). */
  passthrough: passthroughSection,
  /** Images, audio, moderations and rerank (src/media/): multipart uploads are streamed, never held whole. */
  media: z.strictObject({
    /** Largest multipart upload (images/edits, audio/transcriptions|translations); 413 `request_too_large` past it, declared or counted. */
    maxUploadBytes: byteSize.default(50 * 1024 * 1024),
    /** Bytes held in memory while waiting for the `model` field; a file part before it sends the upload to a spool file. */
    routingPrefixBytes: byteSize.default(256 * 1024),
    /** Where such uploads are spooled (default: the OS temp directory); each file is removed when its request ends. */
    spoolDir: z.string().min(1).optional(),
  }).default({ maxUploadBytes: 50 * 1024 * 1024, routingPrefixBytes: 256 * 1024 }),
  /** OpenAI Responses API state kept by the gateway (src/responses/): retention and bounds. */
  responses: responsesSection,
  /** Overrides and additions to the shipped price table (src/pricing/prices.ts), USD per 1M tokens. */
  pricing: z.strictObject({
    models: z.record(z.string(), z.strictObject({
      input: z.number().nonnegative(), output: z.number().nonnegative().default(0), cached: z.number().nonnegative().optional(),
      batch: z.strictObject({ input: z.number().nonnegative(), output: z.number().nonnegative().default(0) }).optional(),
      // Media units (src/pricing/media.ts): per image by `quality:size`, image/audio input tokens, per audio minute, per 1M characters, per 1K searches.
      perImage: z.record(z.string().regex(/^[a-z0-9_-]{1,32}:[a-z0-9_-]{1,32}$/), z.number().nonnegative()).optional(),
      imageInput: z.number().nonnegative().optional(), audioInput: z.number().nonnegative().optional(),
      // Realtime audio tokens (src/realtime/): cached audio input and audio output, USD per 1M.
      audioCached: z.number().nonnegative().optional(), audioOutput: z.number().nonnegative().optional(),
      perAudioMinute: z.number().nonnegative().optional(), perMillionCharacters: z.number().nonnegative().optional(), perThousandSearches: z.number().nonnegative().optional(),
    })).default({}),
  }).default({ models: {} }),
})
export type GatewayConfig = z.infer<typeof configSchema>
