// In-process figures for the identity and content-safety steps alone, robust to a busy machine (CPU time
// of this thread's work, not wall time of a contended loop): what a gateway key, a JWT with a cached JWKS
// key and the builtin content-safety engine cost per request.
// Run: npx tsx bench/identity-micro.ts
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import pino from 'pino'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import { loadConfigText } from '../src/config/load.ts'
import { buildSnapshot } from '../src/config/snapshot.ts'
import { builtinPolicies } from '../src/policies/registry.ts'
import { Authenticator } from '../src/server/auth.ts'
import { BuiltinEngine, builtinEngineSchema } from '../src/policies/content-safety/engines/builtin.ts'
import { SafetyChecker } from '../src/policies/content-safety/checker.ts'
import { promptSegments } from '../src/policies/content-safety/texts.ts'
import { noopMetrics } from '../src/telemetry/sink.ts'

const { privateKey, publicKey } = await generateKeyPair('RS256')
const jwk = { ...(await exportJWK(publicKey)), kid: 'bench', alg: 'RS256', use: 'sig' }
const server = http.createServer((req, res) => {
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  if (req.url === '/.well-known/openid-configuration') return void res.writeHead(200).end(JSON.stringify({ issuer: base, jwks_uri: `${base}/keys` }))
  res.writeHead(200).end(JSON.stringify({ keys: [jwk] }))
})
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
const ISSUER = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
const KEY = 'sk-bench-0123456789abcdef'
const res = loadConfigText(`
backends: [ { id: m, type: mock } ]
models: [ { name: gpt-4o-mini, target: m } ]
products: [ { id: p }, { id: finance } ]
consumers: [ { id: bench, product: p, keys: [ { value: ${KEY} } ] } ]
auth:
  jwt:
    - { issuer: "${ISSUER}", audiences: [api://sluice], consumer: claims.sub, product: '"FinanceAIUser" in claims.roles ? "finance" : "p"', requiredClaims: { scp: [ai.use] } }
`, { registry: builtinPolicies(), env: {} })
if (!res.ok) throw new Error(JSON.stringify(res.problems))
const snapshot = buildSnapshot(res.config)
const auth = new Authenticator(null)
auth.warm(snapshot)
const token = await new SignJWT({ sub: 'bench-user', aud: 'api://sluice', scp: 'ai.use openid profile', roles: ['FinanceAIUser', 'Reader'], tid: '72f988bf-86f1-41af-91ab-2d7cd011db47', oid: '00000000-0000-0000-0000-000000000001', name: 'Bench User', preferred_username: 'bench@example.com' })
  .setProtectedHeader({ alg: 'RS256', kid: 'bench', typ: 'JWT' }).setIssuer(ISSUER).setIssuedAt().setExpirationTime('4h').sign(privateKey)
await auth.resolve(snapshot, { authorization: `Bearer ${token}` }) // fetches the JWKS once

async function cpuPerCall(n: number, fn: () => unknown): Promise<number> {
  for (let i = 0; i < Math.min(2000, n); i++) await fn()
  const c0 = process.cpuUsage()
  for (let i = 0; i < n; i++) await fn()
  const c = process.cpuUsage(c0)
  return (c.user + c.system) / n
}
const keyUs = await cpuPerCall(200_000, () => auth.resolve(snapshot, { authorization: `Bearer ${KEY}` }))
const jwtRepeatUs = await cpuPerCall(100_000, () => auth.resolve(snapshot, { authorization: `Bearer ${token}` }))
// First sight of a token: signature verified with the cached JWKS key (distinct tokens, signed beforehand).
const fresh: string[] = []
for (let i = 0; i < 4000; i++) {
  fresh.push(await new SignJWT({ sub: `u${i}`, aud: 'api://sluice', scp: 'ai.use openid profile', roles: ['Reader'], tid: '72f988bf-86f1-41af-91ab-2d7cd011db47', name: 'Bench User' })
    .setProtectedHeader({ alg: 'RS256', kid: 'bench', typ: 'JWT' }).setIssuer(ISSUER).setIssuedAt().setExpirationTime('4h').sign(privateKey))
}
let k = 0
const jwtFirstUs = await cpuPerCall(2000, () => auth.resolve(snapshot, { authorization: `Bearer ${fresh[k++]}` }))
server.close()

const engine = new BuiltinEngine(builtinEngineSchema.parse({ type: 'builtin', blocklist: ['Project Falcon', 'Blue Harbor', 'Orion Deal'], pii: { action: 'redact' }, shieldPrompt: true }))
const checker = new SafetyChecker({ builtins: [engine], remotes: [], windowSize: 10_000, windowOverlap: 100, onFailure: 'closed', timeout: 1000, metrics: noopMetrics, logger: pino({ level: 'silent' }) })
const sentence = 'The quarterly numbers look fine, revenue is up four percent and costs are flat across regions. '
const prompts: Record<string, string> = {
  '200 chars': sentence.repeat(2) + 'Mail jane.doe@example.com.',
  '2,000 chars': sentence.repeat(21) + 'Mail jane.doe@example.com.',
  '10,000 chars': sentence.repeat(105) + 'Mail jane.doe@example.com.',
}
const rows: string[] = []
for (const [name, text] of Object.entries(prompts)) {
  const times: number[] = []
  const signal = new AbortController().signal
  for (let i = 0; i < 22_000; i++) {
    const body = { messages: [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content: text }] }
    const t0 = performance.now()
    await checker.check(promptSegments('chat.completions', body, { system: false, tools: false, assistant: false }), signal)
    if (i >= 2000) times.push((performance.now() - t0) * 1000)
  }
  times.sort((a, b) => a - b)
  const p = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!.toFixed(0)
  rows.push(`| ${name} | ${p(0.5)} µs | ${p(0.99)} µs |`)
}
console.log(JSON.stringify({ tokenBytes: token.length, keyResolveCpuUs: +keyUs.toFixed(2), jwtFirstSightCpuUs: +jwtFirstUs.toFixed(1), jwtRepeatCpuUs: +jwtRepeatUs.toFixed(2) }))
console.log('| prompt | p50 | p99 |\n|---|---|---|\n' + rows.join('\n'))
