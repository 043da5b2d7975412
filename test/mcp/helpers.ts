import { createServer, type IncomingMessage, type Server as HttpServer } from 'node:http'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js'
import { z } from 'zod'

export const UPSTREAM_SECRET = 'upstream-secret-0123456789'
export const API_SECRET = 'rest-api-secret-9876543210'

async function listen(server: HttpServer): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

function closeServer(server: HttpServer): Promise<void> {
  server.closeAllConnections()
  return new Promise((resolve) => server.close(() => resolve()))
}

export interface RestApi {
  readonly url: string
  /** Requests the API received: method, URL and the credential header it saw. */
  readonly seen: Array<{ method: string; url: string; apiKey: string | undefined; authorization: string | undefined; body: string }>
  close(): Promise<void>
}

/** A REST API of the test's own: pets by id (path + query), created from a JSON body, and an oversized answer. */
export async function startRestApi(): Promise<RestApi> {
  const seen: RestApi['seen'] = []
  const server = createServer(async (req, res) => {
    const body = await readBody(req)
    seen.push({ method: req.method!, url: req.url!, apiKey: req.headers['x-api-key'] as string | undefined, authorization: req.headers.authorization, body })
    if (req.headers['x-api-key'] !== API_SECRET) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"message":"no key"}')
      return
    }
    const u = new URL(req.url!, 'http://x')
    const pet = /^\/v1\/pets\/([^/]+)$/.exec(u.pathname)
    if (req.method === 'GET' && pet) {
      const id = decodeURIComponent(pet[1]!)
      if (id === 'missing') return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"message":"no such pet"}')
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id, name: `pet-${id}`, verbose: u.searchParams.get('verbose') === 'true', tags: u.searchParams.getAll('tag') }))
    }
    if (req.method === 'POST' && u.pathname === '/v1/pets') {
      const parsed = JSON.parse(body) as Record<string, unknown>
      return void res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 'p-1', name: parsed.name, species: parsed.species, owner: parsed.owner }))
    }
    if (req.method === 'GET' && u.pathname === '/v1/big') {
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ blob: 'x'.repeat(300_000) }))
    }
    if (req.method === 'DELETE' && pet) return void res.writeHead(204).end()
    res.writeHead(404).end()
  })
  const url = await listen(server)
  return { url, seen, close: () => closeServer(server) }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let s = ''
    req.on('data', (c) => { s += c })
    req.on('end', () => resolve(s))
  })
}

/** The OpenAPI 3 document of that API, with $refs for a parameter, the body schema and a nested schema. */
export const PETS_OPENAPI = {
  openapi: '3.0.3',
  info: { title: 'Pets', version: '1' },
  components: {
    securitySchemes: { key: { type: 'apiKey', in: 'header', name: 'X-Api-Key' } },
    parameters: { PetId: { name: 'petId', in: 'path', required: true, description: 'The pet id', schema: { type: 'string' } } },
    schemas: {
      Owner: { type: 'object', properties: { name: { type: 'string' }, email: { type: 'string', nullable: true } }, required: ['name'] },
      NewPet: { type: 'object', properties: { name: { type: 'string' }, species: { type: 'string', enum: ['cat', 'dog'] }, owner: { $ref: '#/components/schemas/Owner' } }, required: ['name', 'species'] },
      Pet: { type: 'object', properties: { id: { type: 'string' }, name: { type: 'string' } }, required: ['id', 'name'] },
    },
  },
  paths: {
    '/pets/{petId}': {
      parameters: [{ $ref: '#/components/parameters/PetId' }],
      get: {
        operationId: 'getPet', summary: 'Get a pet', description: 'Looks a pet up by id.',
        parameters: [
          { name: 'verbose', in: 'query', schema: { type: 'boolean' } },
          { name: 'tag', in: 'query', schema: { type: 'array', items: { type: 'string' } } },
        ],
        responses: { 200: { description: 'ok', content: { 'application/json': { schema: { $ref: '#/components/schemas/Pet' } } } } },
      },
      delete: { operationId: 'deletePet', summary: 'Delete a pet', responses: { 204: { description: 'gone' } } },
    },
    '/pets': {
      post: {
        operationId: 'createPet', summary: 'Create a pet',
        requestBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/NewPet' } } } },
        responses: { 201: { description: 'created' } },
      },
    },
    '/big': { get: { operationId: 'bigAnswer', summary: 'An answer too large to relay', responses: { 200: { description: 'ok' } } } },
  },
}

export function writeSpec(doc: unknown = PETS_OPENAPI): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-mcp-'))
  const file = join(dir, 'openapi.json')
  writeFileSync(file, JSON.stringify(doc))
  return file
}

export interface UpstreamMcp {
  readonly url: string
  /** Authorization headers the server received (to prove the consumer's key never reaches it). */
  readonly authSeen: Set<string>
  readonly sessions: Map<string, StreamableHTTPServerTransport>
  /** Resolves the `hang` tool's wait (so a test can let it finish). */
  release(): void
  /** Sends a log message outside any request: it travels on each session's standalone GET stream. */
  broadcast(data: string): Promise<void>
  /** Sessions with a standalone GET stream open. */
  readonly getStreams: Set<string>
  /** Resolves with the session id of the next standalone GET stream opened (rejects after `ms`). */
  nextGetStream(ms?: number): Promise<string>
  close(): Promise<void>
}

/**
 * A real MCP server (the SDK's McpServer, stateful Streamable HTTP) on loopback, requiring its own bearer
 * credential. Tools: echo, add, slow_progress (progress notifications), hang (never answers until released),
 * huge (an oversized result); one resource and one prompt.
 */
export async function startUpstreamMcp(opts: { name?: string; tools?: string[]; extra?: (s: McpServer) => void } = {}): Promise<UpstreamMcp> {
  const authSeen = new Set<string>()
  const sessions = new Map<string, StreamableHTTPServerTransport>()
  const waiters: Array<() => void> = []
  const servers: McpServer[] = []
  const getStreams = new Set<string>()
  const getWaiters: Array<(sid: string) => void> = []
  const build = () => {
    const s = new McpServer({ name: opts.name ?? 'upstream', version: '1.0.0' }, { capabilities: { logging: {} } })
    const want = (n: string) => !opts.tools || opts.tools.includes(n)
    if (want('echo')) s.registerTool('echo', { description: 'Echoes text', inputSchema: { text: z.string() } }, async ({ text }) => ({ content: [{ type: 'text', text: `echo: ${text}` }] }))
    if (want('add')) s.registerTool('add', { description: 'Adds two numbers', inputSchema: { a: z.number(), b: z.number() } }, async ({ a, b }) => ({ content: [{ type: 'text', text: String(a + b) }], structuredContent: { sum: a + b } }))
    if (want('zeta')) s.registerTool('zeta', { description: 'Last by name', inputSchema: {} }, async () => ({ content: [{ type: 'text', text: 'z' }] }))
    if (want('slow_progress')) s.registerTool('slow_progress', { description: 'Reports progress', inputSchema: {} }, async (_a, extra) => {
      const token = extra._meta?.progressToken
      for (let i = 1; i <= 3; i++) if (token !== undefined) await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: i, total: 3 } })
      await extra.sendNotification({ method: 'notifications/message', params: { level: 'info', data: 'working' } })
      return { content: [{ type: 'text', text: 'done' }] }
    })
    if (want('hang')) s.registerTool('hang', { description: 'Never answers', inputSchema: {} }, async (_a, extra) => {
      await extra.sendNotification({ method: 'notifications/message', params: { level: 'info', data: 'started' } })
      await new Promise<void>((resolve) => waiters.push(resolve))
      return { content: [{ type: 'text', text: 'late' }] }
    })
    if (want('huge')) s.registerTool('huge', { description: 'Too large', inputSchema: {} }, async () => ({ content: [{ type: 'text', text: 'y'.repeat(600_000) }] }))
    s.registerResource('readme', 'docs://readme', { mimeType: 'text/plain', description: 'The readme' }, async (uri) => ({ contents: [{ uri: uri.href, text: 'read me' }] }))
    servers.push(s)
    opts.extra?.(s)
    s.registerPrompt('greet', { description: 'A greeting', argsSchema: { who: z.string() } }, ({ who }) => ({ messages: [{ role: 'user', content: { type: 'text', text: `Hello ${who}` } }] }))
    return s
  }
  const server = createServer(async (req, res) => {
    authSeen.add(String(req.headers.authorization))
    if (req.headers.authorization !== `Bearer ${UPSTREAM_SECRET}`) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"unauthorized"}')
      return
    }
    const sid = req.headers['mcp-session-id'] as string | undefined
    let body: unknown
    if (req.method === 'POST') body = JSON.parse((await readBody(req)) || 'null')
    let transport = sid ? sessions.get(sid) : undefined
    if (!transport) {
      if (sid || req.method !== 'POST' || !isInitializeRequest(body)) {
        res.writeHead(sid ? 404 : 400, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"no session"}}')
        return
      }
      const t: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({ sessionIdGenerator: () => randomUUID(), onsessioninitialized: (id) => { sessions.set(id, t) } })
      t.onclose = () => { if (t.sessionId) sessions.delete(t.sessionId) }
      await build().connect(t)
      transport = t
    }
    if (req.method === 'GET' && sid) {
      getStreams.add(sid)
      for (const w of getWaiters.splice(0)) w(sid)
      res.once('close', () => getStreams.delete(sid))
    }
    await transport.handleRequest(req, res, body)
  })
  const url = `${await listen(server)}/mcp`
  return {
    url, authSeen, sessions, getStreams,
    nextGetStream: (ms = 10_000) => new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no GET stream opened within ${ms} ms`)), ms)
      getWaiters.push((sid) => { clearTimeout(t); resolve(sid) })
    }),
    release: () => { for (const w of waiters.splice(0)) w() },
    broadcast: async (data) => { for (const s of servers) if (s.isConnected()) await s.server.sendLoggingMessage({ level: 'info', data }).catch(() => {}) },
    close: async () => {
      for (const w of waiters.splice(0)) w()
      for (const t of sessions.values()) await t.close().catch(() => {})
      await closeServer(server)
    },
  }
}

/** The official SDK client on `/mcp/{id}` of a gateway, with a consumer key. */
export async function mcpClient(url: string, key: string, opts: { sessionId?: string } = {}): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${key}` } }, sessionId: opts.sessionId })
  const client = new Client({ name: 'test-client', version: '1.0.0' })
  await client.connect(transport)
  return { client, transport }
}

/** One raw JSON-RPC POST (what a misbehaving client might send). */
export async function rawPost(url: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; text: string }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers }, body })
  return { status: res.status, headers: res.headers, text: await res.text() }
}
