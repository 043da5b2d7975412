import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose'

/** A signing key of the test issuer. */
export interface IssuerKey { kid: string; privateKey: CryptoKey; publicJwk: JWK; publicPem: string; alg: string }

export async function newKey(kid: string, alg = 'RS256'): Promise<IssuerKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }
  return { kid, privateKey, publicJwk, publicPem: await exportSPKI(publicKey), alg }
}

/**
 * A loopback OpenID provider: discovery document and JWKS, with the knobs the tests turn: which keys the
 * JWKS publishes (rotation), whether it answers at all (outage), and a raw JWKS body (oversized sets).
 */
export class TestIssuer {
  readonly server: http.Server
  url = ''
  published: IssuerKey[] = []
  down = false
  rawJwks: string | null = null
  jwksFetches = 0
  discoveryFetches = 0

  private constructor() {
    this.server = http.createServer((req, res) => {
      if (this.down) { res.writeHead(503).end('down'); return }
      if (req.url === '/.well-known/openid-configuration') {
        this.discoveryFetches++
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ issuer: this.url, jwks_uri: `${this.url}/keys`, id_token_signing_alg_values_supported: ['RS256'] }))
        return
      }
      if (req.url === '/keys') {
        this.jwksFetches++
        res.writeHead(200, { 'content-type': 'application/json' }).end(this.rawJwks ?? JSON.stringify({ keys: this.published.map((k) => k.publicJwk) }))
        return
      }
      res.writeHead(404).end()
    })
  }

  static async start(): Promise<TestIssuer> {
    const t = new TestIssuer()
    await new Promise<void>((r) => t.server.listen(0, '127.0.0.1', r))
    t.url = `http://127.0.0.1:${(t.server.address() as AddressInfo).port}`
    return t
  }

  /** A token from this issuer; `exp` defaults to 10 minutes ahead. */
  async token(key: IssuerKey, claims: JWTPayload & { aud?: string | string[] }, opts: { expiresIn?: number; iss?: string } = {}): Promise<string> {
    const now = Math.floor(Date.now() / 1000)
    return new SignJWT({ ...claims })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
      .setIssuer(opts.iss ?? this.url)
      .setIssuedAt(now)
      .setExpirationTime(now + (opts.expiresIn ?? 600))
      .sign(key.privateKey)
  }

  close(): Promise<void> {
    return new Promise((r) => { this.server.closeAllConnections(); this.server.close(() => r()) })
  }
}
