import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { createMockHandler, type MockOptions, type MockStats } from '../../src/mock/llm.ts'

/**
 * A mock LLM whose behaviour a test can switch while it runs: `behave` returns true when it answered the
 * request itself (a 429, a reset…); otherwise the regular mock LLM answers.
 */
export interface SwitchableUpstream {
  readonly url: string
  readonly stats: MockStats
  /** Requests seen, including the ones `behave` answered. */
  hits: number
  behave: ((req: http.IncomingMessage, res: http.ServerResponse) => boolean) | null
  close(): Promise<void>
}

export async function startSwitchable(opts: MockOptions = {}): Promise<SwitchableUpstream> {
  const mock = createMockHandler(opts)
  const up: SwitchableUpstream = {
    url: '',
    stats: mock.stats,
    hits: 0,
    behave: null,
    close: async () => {},
  }
  const server = http.createServer((req, res) => {
    up.hits++
    if (up.behave && up.behave(req, res)) return
    mock(req, res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  Object.assign(up, {
    url: `http://127.0.0.1:${port}/v1`,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    }),
  })
  return up
}

/** Answers with an OpenAI-shaped error and the given headers, after draining the request body. */
export function reply(status: number, headers: Record<string, string> = {}) {
  return (req: http.IncomingMessage, res: http.ServerResponse): boolean => {
    req.resume()
    req.on('end', () => {
      const body = JSON.stringify({ error: { message: `injected ${status}`, type: 'api_error', param: null, code: null } })
      res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) })
      res.end(body)
    })
    return true
  }
}

/** Resets the connection once the request has arrived, before any response byte. */
export function resetBeforeHeaders(req: http.IncomingMessage, res: http.ServerResponse): boolean {
  req.resume()
  req.on('end', () => res.socket?.destroy())
  return true
}

/** Sends stream headers and these SSE frames, then resets the connection: a stream cut after what it sent. */
export function streamThenReset(frames: readonly string[]) {
  return (req: http.IncomingMessage, res: http.ServerResponse): boolean => {
    req.resume()
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      for (const f of frames) res.write(f)
      setTimeout(() => res.socket?.destroy(), 20)
    })
    return true
  }
}

/** Sends stream headers and a role-only chunk (no content), then resets the connection. */
export const resetBeforeContent = streamThenReset([
  'data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n',
])

/** An address nothing listens on (connection refused). */
export async function deadUrl(): Promise<string> {
  const s = http.createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as AddressInfo).port
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return `http://127.0.0.1:${port}/v1`
}

export async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 10))
  }
}
