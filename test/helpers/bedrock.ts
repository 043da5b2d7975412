import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { EventStreamCodec } from '@smithy/eventstream-codec'
import { fromUtf8, toUtf8 } from '@smithy/util-utf8'

/** What the (mock) Bedrock backend answered to one request, as seen on the wire. */
export interface Reported { path: string; status: number; input: number; output: number; cacheRead: number; auth: string }

/**
 * A proxy in front of the mock Bedrock: forwards everything unchanged (Host included: it is signed) and records
 * what the backend reported (usage from Converse bodies and ConverseStream `metadata` events, decoded here with
 * @smithy/eventstream-codec rather than the gateway's parser).
 */
export async function recordingProxy(target: string): Promise<{ url: string; seen: Reported[]; close(): Promise<void> }> {
  const seen: Reported[] = []
  const t = new URL(target)
  const server = http.createServer((req, res) => {
    const up = http.request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode!, r.headers)
      const chunks: Buffer[] = []
      r.on('data', (c: Buffer) => { chunks.push(c); res.write(c) })
      r.on('error', () => res.destroy())
      r.on('end', () => {
        res.end()
        const body = Buffer.concat(chunks)
        const rec: Reported = { path: req.url!, status: r.statusCode!, input: 0, output: 0, cacheRead: 0, auth: String(req.headers.authorization ?? '') }
        let usage: Record<string, number> | undefined
        if (String(r.headers['content-type']).includes('eventstream')) {
          const codec = new EventStreamCodec(toUtf8, fromUtf8)
          for (let off = 0; off + 4 <= body.length;) {
            const len = body.readUInt32BE(off)
            try {
              const m = codec.decode(body.subarray(off, off + len))
              if (m.headers[':event-type']?.value === 'metadata') usage = (JSON.parse(toUtf8(m.body)) as { usage: Record<string, number> }).usage
            } catch { /* a corrupted message (fault injection) */ }
            off += len
          }
        } else if (r.statusCode === 200) usage = (JSON.parse(body.toString()) as { usage: Record<string, number> }).usage
        if (usage) Object.assign(rec, { input: usage.inputTokens, output: usage.outputTokens, cacheRead: usage.cacheReadInputTokens ?? 0 })
        seen.push(rec)
      })
    })
    up.on('error', () => res.destroy())
    req.pipe(up)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections() }),
  }
}

