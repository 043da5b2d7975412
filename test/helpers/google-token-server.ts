import http from 'node:http'
import { generateKeyPairSync, type KeyObject, createPublicKey } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { jwtVerify } from 'jose'

/**
 * A loopback Google token endpoint for tests: it checks each JWT-bearer grant's RS256 signature against the
 * public key of a key pair made here (so only the holder of the service account's private key gets a
 * token), counts the grants, and has the mock's identity endpoint issue the token (so the mock's Vertex
 * paths accept it). `serviceAccountFile` writes the service-account JSON whose token_uri points here.
 */
export interface GoogleTokenServer {
  readonly url: string
  readonly email: string
  /** Grants whose signature verified. */
  grants: number
  /** Grants refused (bad signature, wrong audience…). */
  refused: number
  readonly scopes: string[]
  serviceAccountFile(dir: string, name?: string): string
  close(): Promise<void>
}

export async function startGoogleTokenServer(mockUrl: string, email = 'sluice-test@proj.iam.gserviceaccount.com'): Promise<GoogleTokenServer> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const pub: KeyObject = createPublicKey(publicKey.export({ type: 'spki', format: 'pem' }))
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  const srv: GoogleTokenServer = {
    url: '',
    email,
    grants: 0,
    refused: 0,
    scopes: [],
    serviceAccountFile(dir, name = 'sa.json') {
      const path = join(dir, name)
      writeFileSync(path, JSON.stringify({
        type: 'service_account', project_id: 'proj', private_key_id: 'test-key-1', private_key: pem, client_email: email,
        client_id: '1', auth_uri: 'https://accounts.google.com/o/oauth2/auth', token_uri: `${srv.url}/token`,
      }))
      return path
    },
    close: async () => {},
  }
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', async () => {
      const form = Buffer.concat(chunks).toString('utf8')
      const assertion = new URLSearchParams(form).get('assertion') ?? ''
      try {
        const { payload, protectedHeader } = await jwtVerify(assertion, pub, { issuer: email, audience: 'https://oauth2.googleapis.com/token', algorithms: ['RS256'] })
        if (protectedHeader.kid !== undefined && protectedHeader.kid !== 'test-key-1') throw new Error('unknown key id')
        srv.scopes.push(String(payload.scope))
      } catch {
        srv.refused++
        res.writeHead(400, { 'content-type': 'application/json' })
        res.end('{"error":"invalid_grant","error_description":"Invalid JWT Signature."}')
        return
      }
      srv.grants++
      const issued = await fetch(`${mockUrl}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form })
      res.writeHead(issued.status, { 'content-type': 'application/json' })
      res.end(await issued.text())
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  Object.assign(srv, {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    }),
  })
  return srv
}
