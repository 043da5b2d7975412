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
  /** Streams currently held back by `holdStreamsAfterFirstContent`. */
  stalled: number
  /** Requests arriving from now on wait (after being recorded) until the returned function is called. */
  holdRequests(): () => void
  /** Streams answered from now on stop after their first content event until the returned function is called. */
  holdStreamsAfterFirstContent(): () => void
  close(): Promise<void>
}

function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void
  const wait = new Promise<void>((resolve) => { open = resolve })
  return { wait, open }
}

export async function startRecordingBackend(): Promise<RecordingBackend> {
  const mock = await startMockServer({ port: 0 })
  let requestGate: Promise<void> | null = null
  let streamGate: Promise<void> | null = null
  const rec: RecordingBackend = {
    url: '', requests: [], mock, inject: {}, stalled: 0, close: async () => {},
    holdRequests() { const g = gate(); requestGate = g.wait; return () => { requestGate = null; g.open() } },
    holdStreamsAfterFirstContent() { const g = gate(); streamGate = g.wait; return () => { streamGate = null; g.open() } },
  }
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const raw = Buffer.concat(chunks)
      let body: Record<string, any> = {}
      try { body = JSON.parse(raw.toString('utf8')) as Record<string, any> } catch { /* recorded as {} */ }
      rec.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body })
      const headers = { ...req.headers, ...rec.inject, host: `127.0.0.1:${mock.port}`, 'content-length': String(raw.length) }
      const forward = () => {
        const stall = streamGate
        const up = http.request({ host: '127.0.0.1', port: mock.port, method: req.method, path: req.url, headers }, (upRes) => {
          res.writeHead(upRes.statusCode ?? 502, upRes.headers)
          upRes.on('error', () => res.destroy())
          upRes.on('aborted', () => res.destroy())
          if (!stall || !String(upRes.headers['content-type']).includes('text/event-stream')) { upRes.pipe(res); return }
          // Relay up to the first content event, then hold the rest back until the gate opens.
          let piped = false
          const onData = (c: Buffer) => {
            res.write(c)
            if (/"content":"[^"]/.test(c.toString('utf8'))) {
              upRes.off('data', onData)
              upRes.pause()
              piped = true
              rec.stalled++
              void stall.then(() => { rec.stalled--; upRes.pipe(res) })
            }
          }
          upRes.on('data', onData)
          upRes.on('end', () => { if (!piped) res.end() })
        })
        up.on('error', () => res.destroy())
        // The gateway going away (a cut stream) must reach the mock, so it stops generating.
        res.on('close', () => { if (!res.writableFinished) up.destroy() })
        up.end(raw)
      }
      if (requestGate) void requestGate.then(forward)
      else forward()
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
