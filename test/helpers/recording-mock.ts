import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { createMockHandler, type MockOptions } from '../../src/mock/llm.ts'

/** One exchange the mock served: what the gateway sent and what the mock answered, as bytes on the wire. */
export interface Exchange {
  readonly method: string
  readonly url: string
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
  status: number
  response: string
}

/**
 * The mock LLM (every dialect) behind a server that records each exchange, so a test can compare what the
 * client got (and what the ledger holds) with what the backend really sent. `override` may answer a request
 * itself (a malformed stream, a canned failure).
 */
export interface RecordingMock {
  readonly url: string
  readonly exchanges: Exchange[]
  override: ((req: http.IncomingMessage, res: http.ServerResponse, body: string) => boolean) | null
  last(): Exchange
  close(): Promise<void>
}

export async function startRecordingMock(opts: MockOptions = {}): Promise<RecordingMock> {
  const mock = createMockHandler(opts)
  const rec: RecordingMock = {
    url: '',
    exchanges: [],
    override: null,
    last() {
      const e = rec.exchanges[rec.exchanges.length - 1]
      if (!e) throw new Error('no exchange recorded')
      return e
    },
    close: async () => {},
  }
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      const ex: Exchange = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, status: 0, response: '' }
      rec.exchanges.push(ex)
      const write = res.write.bind(res) as (...a: unknown[]) => boolean
      const end = res.end.bind(res) as (...a: unknown[]) => http.ServerResponse
      res.write = ((chunk: unknown, ...rest: unknown[]) => {
        if (chunk) ex.response += String(chunk)
        return write(chunk, ...rest)
      }) as typeof res.write
      res.end = ((chunk?: unknown, ...rest: unknown[]) => {
        if (chunk && typeof chunk !== 'function') ex.response += String(chunk)
        ex.status = res.statusCode
        return end(chunk, ...rest)
      }) as typeof res.end
      if (rec.override && rec.override(req, res, body)) return
      // The mock reads the body from the request stream: hand it a replay.
      const replay = Object.assign(Object.create(req) as http.IncomingMessage, {
        on(event: string, fn: (...a: unknown[]) => void) {
          if (event === 'data') queueMicrotask(() => fn(Buffer.from(body)))
          else if (event === 'end') queueMicrotask(() => queueMicrotask(() => fn()))
          else req.on(event, fn)
          return replay
        },
      })
      mock(replay, res)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  Object.assign(rec, {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    }),
  })
  return rec
}

/** The usageMetadata of a recorded Gemini answer (JSON, or the last SSE event that has one). */
export function geminiUsageOf(ex: Exchange): Record<string, number> {
  if (!ex.response.startsWith('data:')) return (JSON.parse(ex.response) as { usageMetadata: Record<string, number> }).usageMetadata
  let usage: Record<string, number> | undefined
  for (const block of ex.response.split('\r\n\r\n')) {
    if (!block.startsWith('data: ')) continue
    const j = JSON.parse(block.slice(6)) as { usageMetadata?: Record<string, number> }
    if (j.usageMetadata) usage = j.usageMetadata
  }
  if (!usage) throw new Error('no usageMetadata in the recorded stream')
  return usage
}
