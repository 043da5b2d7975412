import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { startMockServer, type MockServer } from '../../src/mock/llm.ts'

/** One request as the backend received it. */
export interface Recorded {
  readonly method: string
  /** Path and query exactly as sent, e.g. `/openai/deployments/d/chat/completions?api-version=2025-01-01`. */
  readonly url: string
  /** Lower-cased header names. */
  readonly headers: http.IncomingHttpHeaders
  readonly body: Record<string, any>
}

/**
 * A loopback "provider" that records what it receives (method, path, query, headers, body) and relays the
 * request to the mock LLM for a real OpenAI-shaped answer, streams included. `inject` adds headers to the
 * relayed request, e.g. the mock's fault switches (`x-mock-reset-after-tokens`) to cut a stream from the
 * backend's side.
 */
export interface RecordingBackend {
  /** Base URL with no path, e.g. http://127.0.0.1:40123 */
  readonly url: string
  readonly requests: Recorded[]
  readonly mock: MockServer
  inject: Record<string, string>
  close(): Promise<void>
}

export async function startRecordingBackend(): Promise<RecordingBackend> {
  const mock = await startMockServer({ port: 0 })
  const rec: RecordingBackend = { url: '', requests: [], mock, inject: {}, close: async () => {} }
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const raw = Buffer.concat(chunks)
      let body: Record<string, any> = {}
      try { body = JSON.parse(raw.toString('utf8')) as Record<string, any> } catch { /* recorded as {} */ }
      rec.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body })
      const headers = { ...req.headers, ...rec.inject, host: `127.0.0.1:${mock.port}`, 'content-length': String(raw.length) }
      const up = http.request({ host: '127.0.0.1', port: mock.port, method: req.method, path: req.url, headers }, (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers)
        upRes.pipe(res)
        upRes.on('error', () => res.destroy())
        upRes.on('aborted', () => res.destroy())
      })
      up.on('error', () => res.destroy())
      // The gateway going away (a cut stream) must reach the mock, so it stops generating.
      res.on('close', () => { if (!res.writableFinished) up.destroy() })
      up.end(raw)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  Object.assign(rec, {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await mock.close()
    },
  })
  return rec
}
