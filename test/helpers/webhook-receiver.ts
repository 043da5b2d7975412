import { createHmac, timingSafeEqual } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'

export interface ReceivedHook {
  readonly body: any
  readonly raw: string
  readonly headers: http.IncomingHttpHeaders
  /** Whether x-sluice-signature is a valid HMAC of this body with the secret (computed here, not by src/). */
  readonly signatureValid: boolean
}

/**
 * A webhook receiver on loopback. It answers 500 to the first `failFirst` deliveries of each event id
 * (to exercise retries), and records the accepted ones.
 */
export async function startReceiver(secret: string, opts: { failFirst?: number; mode?: 'ok' | 'hang' | 'redirect' } = {}) {
  const accepted: ReceivedHook[] = []
  const attempts = new Map<string, number>()
  let hits = 0
  const server = http.createServer((req, res) => {
    let raw = ''
    req.on('data', (d) => { raw += d })
    req.on('end', () => {
      hits++
      if (opts.mode === 'hang') return // never answers
      if (opts.mode === 'redirect') { res.writeHead(302, { location: 'http://127.0.0.1:1/elsewhere' }).end(); return }
      const id = String(req.headers['x-sluice-event-id'])
      const n = (attempts.get(id) ?? 0) + 1
      attempts.set(id, n)
      if (n <= (opts.failFirst ?? 0)) { res.writeHead(500).end('not yet'); return }
      accepted.push({ body: JSON.parse(raw), raw, headers: req.headers, signatureValid: verify(secret, raw, String(req.headers['x-sluice-signature'] ?? '')) })
      res.writeHead(204).end()
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}/hook`,
    accepted,
    attempts,
    hits: () => hits,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()) }),
  }
}

/** `t=<unix>,v1=<hex hmac-sha256(secret, t + "." + body)>` */
function verify(secret: string, body: string, header: string): boolean {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header)
  if (!m) return false
  const expected = createHmac('sha256', secret).update(`${m[1]}.${body}`).digest()
  return timingSafeEqual(expected, Buffer.from(m[2]!, 'hex')) && Math.abs(Date.now() / 1000 - Number(m[1])) < 300
}
