import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { measureLoop } from './helpers/loop.ts'
import OpenAI, { AuthenticationError, PermissionDeniedError } from 'openai'
import { SignJWT, UnsecuredJWT } from 'jose'
import { createSecretKey } from 'node:crypto'
import { ManualClock } from '../src/core/clock.ts'
import { TEST_KEY, startTestGateway, type TestGateway } from './helpers/gateway.ts'
import { newKey, TestIssuer, type IssuerKey } from './helpers/oidc.ts'

const AUD = 'api://sluice'
const MESSAGES = [{ role: 'user' as const, content: 'Say hello.' }]

async function call(g: TestGateway, token: string, model = 'gpt-4o-mini', extra: Record<string, unknown> = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(`${g.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: MESSAGES, max_tokens: 5, ...extra }),
  })
  return { status: res.status, body: await res.json() }
}

describe('JWT / OIDC consumers against a loopback issuer', () => {
  const clock = new ManualClock(Date.now())
  let issuer: TestIssuer
  let hugeIssuer: TestIssuer
  let k1: IssuerKey
  let g: TestGateway

  before(async () => {
    issuer = await TestIssuer.start()
    hugeIssuer = await TestIssuer.start()
    k1 = await newKey('k1')
    issuer.published = [k1]
    // 10,000 copies of one public key under different kids: a set nobody should have to load.
    // 10,000 minimal keys (small enough to pass the byte bound, so the key-count bound refuses them).
    hugeIssuer.rawJwks = JSON.stringify({ keys: Array.from({ length: 10_000 }, (_, i) => ({ kty: 'EC', kid: `h${i}` })) })
    g = await startTestGateway(`
backends: [ { id: mock-a, type: mock } ]
models:
  - { name: gpt-4o-mini, target: mock-a }
  - { name: finance-gpt, target: mock-a }
products:
  - id: standard
    models: [gpt-4o-mini]
    policies:
      - token-limit: { counterKey: consumer.id, tokensPerMinute: 60 }
  - { id: finance, models: [gpt-4o-mini, finance-gpt] }
  - { id: keys-only, auth: key }
  - { id: tokens-only, auth: jwt }
consumers:
  - { id: team-a, product: keys-only, keys: [ { value: ${TEST_KEY} } ] }
  - { id: team-t, product: tokens-only, keys: [ { value: sk-team-t-key-123 } ] }
auth:
  jwt:
    - issuer: ${issuer.url}
      audiences: [${AUD}]
      consumer: claims.sub
      product: '"roles" in claims && "FinanceAIUser" in claims.roles ? "finance" : ("tier" in claims ? claims.tier : "standard")'
      metadata: { dept: claims.dept }
      requiredClaims: { scp: [ai.use] }
    - issuer: ${hugeIssuer.url}
      audiences: [${AUD}]
      jwksUri: ${hugeIssuer.url}/keys
`, { clock })
  })
  after(async () => {
    await g.close()
    await issuer.close()
    await hugeIssuer.close()
  })

  it('a token with the role reaches the finance model; one without gets 403 model_not_allowed', async () => {
    const finance = await issuer.token(k1, { sub: 'alice', aud: AUD, scp: 'ai.use', roles: ['FinanceAIUser'] })
    const plain = await issuer.token(k1, { sub: 'bob', aud: AUD, scp: 'ai.use openid' })
    assert.equal((await call(g, finance, 'finance-gpt')).status, 200)
    const refused = await call(g, plain, 'finance-gpt')
    assert.equal(refused.status, 403)
    assert.equal(refused.body.error.code, 'model_not_allowed')
    assert.equal((await call(g, plain, 'gpt-4o-mini')).status, 200)
    // Through discovery: the configured issuer has no jwksUri.
    assert.equal(issuer.discoveryFetches, 1)
  })

  it('the official SDK sees AuthenticationError invalid_token for an expired token, never the token itself', async () => {
    const expired = await issuer.token(k1, { sub: 'carol', aud: AUD, scp: 'ai.use' }, { expiresIn: -3600 })
    const client = new OpenAI({ apiKey: expired, baseURL: `${g.url}/v1`, maxRetries: 0 })
    const err = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: MESSAGES, max_tokens: 5 }).then(() => null, (e: unknown) => e)
    assert.ok(err instanceof AuthenticationError, String(err))
    assert.equal(err.status, 401)
    assert.equal(err.code, 'invalid_token')
    assert.match(err.message, /expired/)
    assert.ok(!err.message.includes(expired.slice(0, 20)))
    const fresh = await issuer.token(k1, { sub: 'carol', aud: AUD, scp: 'ai.use' })
    const ok = await new OpenAI({ apiKey: fresh, baseURL: `${g.url}/v1`, maxRetries: 0 }).chat.completions.create({ model: 'gpt-4o-mini', messages: MESSAGES, max_tokens: 5 })
    assert.equal(ok.choices.length, 1)
  })

  it('names the reason class: audience, missing claim, signature, issuer', async () => {
    const other = await newKey('k1') // same kid, different key: a forged signature
    const cases: Array<[string, Promise<string>, RegExp]> = [
      ['audience', issuer.token(k1, { sub: 'd', aud: 'api://other', scp: 'ai.use' }), /audience/],
      ['claim', issuer.token(k1, { sub: 'd', aud: AUD }), /missing the required claim "scp"/],
      ['claim value', issuer.token(k1, { sub: 'd', aud: AUD, scp: 'openid' }), /"scp" claim does not hold/],
      ['signature', issuer.token(other, { sub: 'd', aud: AUD, scp: 'ai.use' }), /signature/],
      ['issuer', issuer.token(k1, { sub: 'd', aud: AUD, scp: 'ai.use' }, { iss: 'https://evil.example' }), /issuer/],
    ]
    for (const [name, tokenP, reason] of cases) {
      const r = await call(g, await tokenP)
      assert.equal(r.status, 401, name)
      assert.equal(r.body.error.code, 'invalid_token', name)
      assert.match(r.body.error.message, reason, name)
    }
  })

  it('token limits hold per claim-derived consumer', async () => {
    // 60 tokens a minute: a first call reserves its prompt + max_tokens (40) and settles; a second one no longer fits.
    const t1 = await issuer.token(k1, { sub: 'limited-1', aud: AUD, scp: 'ai.use' })
    const t2 = await issuer.token(k1, { sub: 'limited-2', aud: AUD, scp: 'ai.use' })
    assert.equal((await call(g, t1, 'gpt-4o-mini', { max_tokens: 40 })).status, 200)
    const second = await call(g, t1, 'gpt-4o-mini', { max_tokens: 40 })
    assert.equal(second.status, 429)
    assert.equal(second.body.error.code, 'rate_limit_exceeded')
    assert.equal((await call(g, t2, 'gpt-4o-mini', { max_tokens: 40 })).status, 200)
  })

  it('products say which credentials they take: key, jwt or any', async () => {
    assert.equal((await call(g, TEST_KEY)).status, 200) // keys-only product, with a key
    const toKeysOnly = await issuer.token(k1, { sub: 'e', aud: AUD, scp: 'ai.use', tier: 'keys-only' })
    const r1 = await call(g, toKeysOnly)
    assert.equal(r1.status, 401)
    assert.equal(r1.body.error.code, 'invalid_token')
    const keyToTokensOnly = await call(g, 'sk-team-t-key-123')
    assert.equal(keyToTokensOnly.status, 401)
    assert.equal(keyToTokensOnly.body.error.code, 'invalid_api_key')
    const toTokensOnly = await issuer.token(k1, { sub: 'f', aud: AUD, scp: 'ai.use', tier: 'tokens-only' })
    assert.equal((await call(g, toTokensOnly)).status, 200)
  })

  it('follows a key rotation on an unknown kid, at most once per refresh interval', async () => {
    const k2 = await newKey('k2')
    issuer.published = [k2] // rotated: k1 gone
    const fetchesBefore = issuer.jwksFetches
    const t2 = await issuer.token(k2, { sub: 'g', aud: AUD, scp: 'ai.use' })
    // The keys were fetched moments ago: an unknown kid does not trigger a fetch per request.
    const early = await call(g, t2)
    assert.equal(early.status, 401)
    assert.match(early.body.error.message, /unknown key/)
    assert.equal((await call(g, t2)).status, 401)
    assert.equal(issuer.jwksFetches, fetchesBefore)
    clock.advance(5 * 60_000 + 1)
    assert.equal((await call(g, t2)).status, 200)
    assert.equal(issuer.jwksFetches, fetchesBefore + 1)
  })

  it('keeps validating with the cached keys while the JWKS endpoint is down', async () => {
    const k2 = issuer.published[0]!
    issuer.down = true
    clock.advance(2 * 3_600_000) // past jwksMaxAge and the refresh interval: both refresh paths fail
    const t = await issuer.token(k2, { sub: 'h', aud: AUD, scp: 'ai.use' })
    assert.equal((await call(g, t)).status, 200)
    const unknown = await issuer.token(await newKey('k9'), { sub: 'h', aud: AUD, scp: 'ai.use' })
    assert.equal((await call(g, unknown)).status, 401)
    assert.equal((await call(g, t)).status, 200)
    issuer.down = false
  })

  it('keeps its keys when the JWKS turns into 10,000 keys; an issuer that only ever served such a set is unavailable', async () => {
    const k2 = issuer.published[0]!
    const valid = await issuer.token(k2, { sub: 'i', aud: AUD, scp: 'ai.use' })
    // 10,000 real keys (~4 MB): over the byte bound, the download is cut off and the cached keys stay.
    issuer.rawJwks = JSON.stringify({ keys: Array.from({ length: 10_000 }, (_, i) => ({ ...k2.publicJwk, kid: `x${i}` })) })
    clock.advance(5 * 60_000 + 1)
    const fetches = issuer.jwksFetches
    assert.equal((await call(g, await issuer.token(await newKey('k8'), { sub: 'i', aud: AUD, scp: 'ai.use' }))).status, 401)
    assert.equal(issuer.jwksFetches, fetches + 1)
    assert.equal((await call(g, valid)).status, 200)
    // 10,000 minimal keys (small enough for the byte bound, refused by the key-count bound), measured:
    // the served document is small, so what the loop spends is the gateway's handling.
    issuer.rawJwks = JSON.stringify({ keys: Array.from({ length: 10_000 }, (_, i) => ({ kty: 'RSA', kid: `y${i}` })) })
    clock.advance(5 * 60_000 + 1)
    const unknown = await issuer.token(await newKey('k7'), { sub: 'i', aud: AUD, scp: 'ai.use' })
    const fromHuge = await hugeIssuer.token(k1, { sub: 'j', aud: AUD }, {})
    const { value: [u, v, r], maxBlockedCpuMs } = await measureLoop(async () => [
      await call(g, unknown), // triggers the fetch of the oversized set, refused
      await call(g, valid),
      await call(g, fromHuge),
    ])
    assert.equal(u.status, 401)
    assert.equal(v.status, 200)
    assert.equal(r.status, 503)
    assert.equal(r.body.error.code, 'service_unavailable')
    assert.ok(hugeIssuer.jwksFetches >= 1)
    assert.ok(maxBlockedCpuMs < 20, `event loop held ${maxBlockedCpuMs} ms`)
    issuer.rawJwks = null
  })

  it('refuses a 1 MB token, alg none and an HMAC token keyed with the public key, without blocking', async () => {
    const k = issuer.published[0]!
    const huge = await issuer.token(k, { sub: 'big', aud: AUD, scp: 'ai.use', pad: 'x'.repeat(1024 * 1024) })
    // Over HTTP a 1 MB header never reaches the gateway: Node's header limit answers 431 first.
    const big = await fetch(`${g.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${huge}` }, body: '{}' }).then((r) => r.status, () => 'reset')
    assert.ok(big === 431 || big === 'reset', String(big))
    const loop = await measureLoop(async () => {
    // Behind a proxy allowing larger headers, the validator refuses it before decoding anything.
    const direct = await Promise.resolve(g.gw.auth.resolve(g.gw.runtime().snapshot, { authorization: `Bearer ${huge}` }))
      .then(() => null, (e: any) => e)
    assert.equal(direct.code, 'invalid_token')
    assert.match(direct.message, /larger/)
    const none = new UnsecuredJWT({ sub: 'none', aud: AUD, scp: 'ai.use' }).setIssuer(issuer.url).setIssuedAt().setExpirationTime('10m').encode()
    const hmac = await new SignJWT({ sub: 'hs', aud: AUD, scp: 'ai.use' })
      .setProtectedHeader({ alg: 'HS256', kid: k.kid }).setIssuer(issuer.url).setIssuedAt().setExpirationTime('10m')
      .sign(createSecretKey(Buffer.from(k.publicPem)))
    const results = []
    for (const [t, reason] of [[none, /algorithm/], [hmac, /algorithm/]] as const) {
      const res = await fetch(`${g.url}/v1/chat/completions`, {
        method: 'POST', headers: { authorization: `Bearer ${t}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o-mini', messages: MESSAGES }),
      })
      const body = await res.json() as any
      results.push(res.status)
      assert.equal(body.error.code, 'invalid_token')
      assert.match(body.error.message, reason)
    }
    assert.deepEqual(results, [401, 401])
    })
    assert.ok(loop.maxBlockedCpuMs < 20, `event loop held ${loop.maxBlockedCpuMs} ms`)
    // The contrast: a proper RS256 token from the same key passes.
    assert.equal((await call(g, await issuer.token(k, { sub: 'ok', aud: AUD, scp: 'ai.use' }))).status, 200)
  })

  it('an SDK with a token lacking the role gets PermissionDeniedError on the finance model', async () => {
    const t = await issuer.token(issuer.published[0]!, { sub: 'k', aud: AUD, scp: 'ai.use', roles: ['Reader'] })
    const err = await new OpenAI({ apiKey: t, baseURL: `${g.url}/v1`, maxRetries: 0 }).chat.completions.create({ model: 'finance-gpt', messages: MESSAGES }).then(() => null, (e: unknown) => e)
    assert.ok(err instanceof PermissionDeniedError, String(err))
    assert.equal(err.code, 'model_not_allowed')
  })
})
