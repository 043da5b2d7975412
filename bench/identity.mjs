#!/usr/bin/env node
// Identity and content-safety figures for BENCHMARKS.md:
//  1. CPU per request at saturation: a gateway key vs a JWT validated against a cached JWKS (RS256).
//  2. Latency the builtin content-safety engine adds (blocklist + PII redaction + injection heuristics),
//     p50/p99 at a fixed rate, against the same gateway without the policy.
// Same method as bench/run.mjs: fake upstream, gateway pinned to CPU 1, load + upstream + issuer on CPU 0.
// Run: node bench/identity.mjs [--duration S] [--rounds N] [--rate R]
import { execFileSync } from 'node:child_process'
import { createServer } from 'node:http'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir, availableParallelism } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import { startFakeUpstream, startSluice } from './lib/targets.mjs'
import { saturate, wrkAvailable } from './lib/saturate.mjs'
import { openLoop } from './lib/open-loop.mjs'
import { cpuMicros } from './lib/proc.mjs'
import { median } from './lib/stats.mjs'

const { values: opt } = parseArgs({ options: { duration: { type: 'string', default: '5' }, rounds: { type: 'string', default: '2' }, rate: { type: 'string', default: '500' }, warmup: { type: 'string', default: '3' } } })
const D = Number(opt.duration)
const ROUNDS = Number(opt.rounds)
const RATE = Number(opt.rate)
const WARM = Number(opt.warmup)
const log = (m) => process.stderr.write(`[identity-bench] ${m}\n`)
const tmp = mkdtempSync(join(tmpdir(), 'sluice-identity-bench-'))
if (availableParallelism() >= 2) execFileSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' })

// A loopback OpenID issuer: discovery + JWKS, one RS256 key.
const { privateKey, publicKey } = await generateKeyPair('RS256')
const jwk = { ...(await exportJWK(publicKey)), kid: 'bench', alg: 'RS256', use: 'sig' }
const issuerServer = createServer((req, res) => {
  const base = `http://127.0.0.1:${issuerServer.address().port}`
  if (req.url === '/.well-known/openid-configuration') return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ issuer: base, jwks_uri: `${base}/keys` }))
  if (req.url === '/keys') return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }))
  res.writeHead(404).end()
})
await new Promise((r) => issuerServer.listen(0, '127.0.0.1', r))
const ISSUER = `http://127.0.0.1:${issuerServer.address().port}`
// A realistic Entra-style access token (~900 bytes): roles, scopes, tenant and object ids.
const token = await new SignJWT({ sub: 'bench-user', aud: 'api://sluice', scp: 'ai.use openid profile', roles: ['FinanceAIUser', 'Reader'], tid: '72f988bf-86f1-41af-91ab-2d7cd011db47', oid: '00000000-0000-0000-0000-000000000001', name: 'Bench User', preferred_username: 'bench@example.com' })
  .setProtectedHeader({ alg: 'RS256', kid: 'bench', typ: 'JWT' }).setIssuer(ISSUER).setIssuedAt().setExpirationTime('4h').sign(privateKey)

const KEY = 'sk-bench-0123456789abcdef'
const common = `listen: { host: 127.0.0.1, port: 0 }
admin: { enabled: false }
logging: { level: warn }
ledger: { type: none }
store: { type: memory }
backends:
  - { id: fake, type: openai-compatible, url: "http://127.0.0.1:\${FAKE_UPSTREAM_PORT}/v1", maxConnections: 128 }
models:
  - { name: gpt-4o-mini, target: fake }
`
const configs = {
  key: `${common}products: [ { id: p } ]\nconsumers: [ { id: bench, product: p, keys: [ { value: ${KEY} } ] } ]\n`,
  jwt: `${common}products: [ { id: p } ]\nauth:\n  jwt:\n    - { issuer: "${ISSUER}", audiences: [api://sluice], consumer: claims.sub, product: '"FinanceAIUser" in claims.roles ? "p" : "p"', requiredClaims: { scp: [ai.use] } }\n`,
  builtin: `${common}products:
  - id: p
    policies:
      - content-safety:
          engines: [ { type: builtin, blocklist: ["Project Falcon", "Blue Harbor", "Orion Deal"], pii: { action: redact }, shieldPrompt: true } ]
consumers: [ { id: bench, product: p, keys: [ { value: ${KEY} } ] } ]
`,
}
const files = {}
for (const [n, text] of Object.entries(configs)) writeFileSync((files[n] = join(tmp, `${n}.yaml`)), text)

const MESSAGES = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'Summarise this for me: the quarterly numbers look fine, revenue is up four percent and costs are flat. Contact me at jane.doe@example.com if anything is unclear.' },
]
const BODY = JSON.stringify({ model: 'gpt-4o-mini', messages: MESSAGES, max_tokens: 50 })
const headersFor = (n) => ({ 'content-type': 'application/json', authorization: `Bearer ${n === 'jwt' ? token : KEY}` })

const upstream = await startFakeUpstream({ logDir: tmp })
const gws = {}
for (const n of Object.keys(configs)) gws[n] = await startSluice({ name: n, configFile: files[n], upstreamPort: upstream.port, cpu: 1, logDir: tmp, headers: headersFor(n), body: BODY })
const tool = wrkAvailable() ? 'wrk' : 'autocannon'
log(`load generator ${tool}; logs in ${tmp}`)

const sat = { key: [], jwt: [] }
const lat = { key: [], builtin: [] }
try {
  for (const n of Object.keys(gws)) await saturate({ tool, url: gws[n].url, headers: headersFor(n), body: BODY, connections: 50, durationS: WARM, tmpDir: tmp })
  for (let r = 0; r < ROUNDS; r++) {
    for (const n of r % 2 ? ['jwt', 'key'] : ['key', 'jwt']) {
      const before = cpuMicros(gws[n].pid)
      const res = await saturate({ tool, url: gws[n].url, headers: headersFor(n), body: BODY, connections: 50, durationS: D, tmpDir: tmp })
      sat[n].push({ rps: res.rps, cpu: (cpuMicros(gws[n].pid) - before) / res.requests, errors: res.errors })
      log(`sat ${n}: ${res.rps.toFixed(0)} req/s, ${sat[n].at(-1).cpu.toFixed(0)} µs/req`)
    }
    for (const n of r % 2 ? ['builtin', 'key'] : ['key', 'builtin']) {
      const res = await openLoop({ url: gws[n].url, headers: headersFor(n), body: BODY, rate: RATE, durationS: D })
      lat[n].push(res)
      log(`rate ${RATE} ${n}: p50 ${res.p50.toFixed(2)} ms p99 ${res.p99.toFixed(2)} ms`)
    }
  }
} finally {
  for (const g of Object.values(gws)) await g.stop()
  await upstream.stop()
  issuerServer.close()
}
const m = (xs, k) => median(xs.map((x) => x[k]))
const out = {
  saturation: Object.fromEntries(Object.entries(sat).map(([n, xs]) => [n, { rps: m(xs, 'rps'), cpuUsPerReq: m(xs, 'cpu'), errors: m(xs, 'errors') }])),
  [`rate${RATE}`]: Object.fromEntries(Object.entries(lat).map(([n, xs]) => [n, { p50: m(xs, 'p50'), p99: m(xs, 'p99'), errors: m(xs, 'errors') }])),
  tokenBytes: token.length,
}
console.log(JSON.stringify(out, null, 2))
