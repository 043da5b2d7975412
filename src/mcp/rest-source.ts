import { McpError, type CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import type { Logger } from 'pino'
import type { BackendConfig } from '../config/schema.ts'
import { stateOf, type Breakers } from '../upstream/breaker.ts'
import type { UpstreamClients } from '../upstream/client.ts'
import { failureFromError, UpstreamFailure } from '../upstream/failure.ts'
import { GatewayError, GW_ERR } from '../core/errors.ts'
import { MCP_ERR, mcpError } from './errors.ts'
import { loadSpecText, parseSpec, RESERVED_HEADERS, type RestSpec, type RestTool } from './openapi.ts'
import type { CallContext, ExposedTool, ToolOrigin, ToolSource } from './source.ts'

export interface RestSourceDeps {
  readonly serverId: string
  readonly spec: string
  readonly operations?: readonly string[]
  readonly backend: BackendConfig
  readonly baseUrl: string
  readonly clients: UpstreamClients
  readonly breakers: Breakers
  readonly maxResultBytes: number
  readonly logger: Logger
}

const RETRY_SPEC_AFTER_MS = 10_000

/**
 * REST → MCP: the operations of an OpenAPI document as tools, each call sent to the API through a Sluice
 * backend (its url, auth, timeouts, pooled connections and circuit breaker). An API that answers an HTTP
 * error gives a tool result with `isError` (the model can read it); a backend that cannot be reached or
 * times out gives a JSON-RPC error.
 */
export class RestSource implements ToolSource {
  private spec: Promise<RestSpec> | null = null
  private failedAt = 0

  constructor(private readonly d: RestSourceDeps) {}

  private load(): Promise<RestSpec> {
    if (this.spec && !(this.failedAt && Date.now() - this.failedAt > RETRY_SPEC_AFTER_MS)) return this.spec
    this.failedAt = 0
    this.spec = loadSpecText(this.d.spec).then((text) => parseSpec(text, this.d.operations))
    this.spec.catch((err: Error) => {
      this.failedAt = Date.now()
      this.d.logger.error({ server: this.d.serverId, reason: err.message.slice(0, 300) }, 'mcp: the OpenAPI document could not be loaded')
    })
    return this.spec
  }

  private async specOrError(): Promise<RestSpec> {
    try {
      return await this.load()
    } catch {
      throw mcpError(MCP_ERR.BAD_GATEWAY, `The API description of "${this.d.serverId}" is unavailable.`, { code: 'bad_gateway' })
    }
  }

  async listTools(): Promise<ExposedTool[]> {
    const spec = await this.specOrError()
    return spec.tools.map((t) => ({
      tool: { name: t.name, description: t.description, inputSchema: t.inputSchema, ...(t.outputSchema ? { outputSchema: t.outputSchema } : {}), annotations: t.annotations },
      origin: this.originOf(t),
    }))
  }

  async resolve(name: string): Promise<ToolOrigin | null> {
    const spec = await this.specOrError()
    const t = spec.tools.find((x) => x.name === name)
    return t ? this.originOf(t) : null
  }

  private originOf(t: RestTool): ToolOrigin {
    return { server: this.d.serverId, tool: t.name, backend: this.d.backend.id }
  }

  async callTool(ctx: CallContext, name: string, args: Record<string, unknown>): Promise<CallToolResult> {
    const spec = await this.specOrError()
    const tool = spec.tools.find((x) => x.name === name)
    if (!tool) throw mcpError(MCP_ERR.UNKNOWN_TOOL, `Unknown tool: ${name.slice(0, 64)}`, { code: 'tool_not_found' })
    const { backend, breakers } = this.d
    if (breakers.has(backend.id)) {
      const rec = (await breakers.read([backend.id])).get(backend.id)
      const state = stateOf(rec, breakers.now())
      if (state === 'open' || (state === 'half-open' && !(await breakers.claimTrial(backend.id)))) {
        throw mcpError(MCP_ERR.BAD_GATEWAY, `The API behind "${this.d.serverId}" is unavailable (circuit open); retry later.`, { code: 'no_healthy_backend', retryAfterMs: rec ? Math.max(0, rec.openUntil - breakers.now()) : 0 })
      }
    }
    const req = buildRequest(tool, args, this.d.baseUrl)
    const headers: Record<string, string> = { accept: 'application/json', ...(backend.headers ?? {}), ...req.headers }
    if (req.body !== null) headers['content-type'] = 'application/json'
    if (backend.auth?.apiKey) {
      if (spec.apiKeyHeader) headers[spec.apiKeyHeader] = backend.auth.apiKey
      else headers.authorization = `Bearer ${backend.auth.apiKey}`
    }
    const creds = this.d.clients.credentials.of(backend)
    const url = new URL(req.path, this.d.baseUrl)
    const pool = this.d.clients.poolFor(backend, url.origin)
    const sign = async () => {
      if (!creds) return
      try {
        Object.assign(headers, await creds.headers({ method: tool.method, url: url.href, headers, body: req.body ?? '' }, ctx.signal))
      } catch (err) {
        // The credential's own failure (token endpoint down, refused client): not the API's, so not its breaker's.
        if (err instanceof GatewayError) throw mcpError(MCP_ERR.BAD_GATEWAY, `The gateway could not authenticate to the API behind "${this.d.serverId}": ${err.message}`, { code: 'backend_auth_failed' })
        throw err
      }
    }
    try {
      await sign()
      let answer = await send(pool, backend, tool.method, url.pathname + url.search, headers, req.body, ctx.signal, this.d.maxResultBytes)
      // A token the API no longer accepts (revoked, rotated early): one fresh token, one more try.
      if (answer.status === 401 && creds?.invalidate) {
        creds.invalidate()
        await sign()
        answer = await send(pool, backend, tool.method, url.pathname + url.search, headers, req.body, ctx.signal, this.d.maxResultBytes)
      }
      if (answer.status >= 500 || answer.status === 429) void breakers.failed(backend.id, new UpstreamFailure(GW_ERR.BAD_GATEWAY, 'status', 'status', backend.id, answer.status))
      else void breakers.succeeded(backend.id)
      return resultOf(answer)
    } catch (err) {
      if (err instanceof McpError) throw err
      if (ctx.signal.aborted) throw err
      const f = err instanceof UpstreamFailure ? err : failureFromError(err, backend.id)
      void breakers.failed(backend.id, f)
      if (f.kind === 'timeout') throw mcpError(MCP_ERR.GATEWAY_TIMEOUT, `The API behind "${this.d.serverId}" did not answer in time.`, { code: 'gateway_timeout' })
      throw mcpError(MCP_ERR.BAD_GATEWAY, `The API behind "${this.d.serverId}" could not be reached.`, { code: 'bad_gateway' })
    }
  }
}

interface BuiltRequest { path: string; headers: Record<string, string>; body: string | null }

/** Path parameters into the template (encoded), query parameters into the query string, headers, and the JSON body. */
export function buildRequest(tool: RestTool, args: Record<string, unknown>, baseUrl: string): BuiltRequest {
  let path = tool.path
  const query = new URLSearchParams()
  const headers: Record<string, string> = {}
  for (const p of tool.params) {
    const v = args[p.name]
    if (v === undefined || v === null) {
      if (p.required) throw mcpError(-32602, `Missing required argument "${p.name}".`, { code: 'invalid_params', param: p.name })
      continue
    }
    if (p.in === 'path') {
      if (typeof v === 'object') throw mcpError(-32602, `Argument "${p.name}" must be a scalar.`, { code: 'invalid_params', param: p.name })
      path = path.split(`{${p.name}}`).join(encodeURIComponent(String(v)))
    } else if (p.in === 'query') {
      for (const item of Array.isArray(v) ? v : [v]) query.append(p.name, typeof item === 'object' ? JSON.stringify(item) : String(item))
    } else if (!RESERVED_HEADERS.has(p.name.toLowerCase())) {
      const s = typeof v === 'object' ? JSON.stringify(v) : String(v)
      if (/[\r\n]/.test(s)) throw mcpError(-32602, `Argument "${p.name}" may not contain line breaks.`, { code: 'invalid_params', param: p.name })
      headers[p.name.toLowerCase()] = s
    }
  }
  let body: string | null = null
  if (tool.bodyArg && args[tool.bodyArg] !== undefined) body = JSON.stringify(args[tool.bodyArg])
  // The backend URL may carry a base path (https://api.example.com/v2): operation paths go under it.
  const base = new URL(baseUrl)
  const prefix = base.pathname.replace(/\/+$/, '')
  const qs = query.toString()
  return { path: `${prefix}${path}${qs ? `?${qs}` : ''}`, headers, body }
}

interface Answer { status: number; contentType: string; text: string }

async function send(pool: ReturnType<UpstreamClients['poolFor']>, backend: BackendConfig, method: string, path: string, headers: Record<string, string>, body: string | null, signal: AbortSignal, maxBytes: number): Promise<Answer> {
  const attempt = new AbortController()
  let timedOut = false
  const timer = setTimeout(() => { timedOut = true; attempt.abort() }, backend.timeout)
  const onAbort = () => attempt.abort()
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    const res = await pool.request({ method: method as 'GET', path, headers, body: body ?? undefined, signal: attempt.signal, headersTimeout: backend.timeout, bodyTimeout: backend.idleTimeout })
    clearTimeout(timer)
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length
      if (size > maxBytes) {
        res.body.destroy()
        throw mcpError(MCP_ERR.RESULT_TOO_LARGE, `The tool result is larger than the gateway relays (${maxBytes} bytes).`, { code: 'result_too_large', maxBytes })
      }
      chunks.push(chunk as Buffer)
    }
    return { status: res.statusCode, contentType: String(res.headers['content-type'] ?? ''), text: Buffer.concat(chunks).toString('utf8') }
  } catch (err) {
    if (timedOut) throw new UpstreamFailure(GW_ERR.GATEWAY_TIMEOUT, 'timeout', 'timeout', backend.id)
    throw err
  } finally {
    clearTimeout(timer)
    signal.removeEventListener('abort', onAbort)
  }
}

/** The API's answer as a tool result: the body as text, and as structuredContent when it is a JSON object. */
function resultOf(a: Answer): CallToolResult {
  const isError = a.status >= 400
  let structured: Record<string, unknown> | undefined
  if (/json/i.test(a.contentType) && a.text) {
    try {
      const parsed: unknown = JSON.parse(a.text)
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) structured = parsed as Record<string, unknown>
    } catch {
      // not JSON after all: text only
    }
  }
  const text = isError ? `HTTP ${a.status}: ${a.text.slice(0, 8192)}` : a.text
  return { content: [{ type: 'text', text }], ...(structured && !isError ? { structuredContent: structured } : {}), ...(isError ? { isError: true } : {}) }
}
