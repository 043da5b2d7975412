// The gateway's SigV4 signer (@smithy/signature-v4 + the AWS credential chain) checked by the mock's
// independent verifier (node:crypto, from the AWS spec), and the verifier itself checked against the AWS
// documentation's worked example. No test reaches anything but loopback: IMDS is disabled and every
// credential comes from static keys, env vars or a temporary shared-credentials file.
process.env.AWS_EC2_METADATA_DISABLED = 'true'

import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHmac } from 'node:crypto'
import { SigV4Credentials, sigV4Credentials } from '../../src/providers/credentials/sigv4.ts'
import { credentialsFor } from '../../src/providers/credentials/index.ts'
import { encodeModelId } from '../../src/providers/bedrock.ts'
import { canonicalRequest, signingKey, stringToSign, verifySigV4, type SignedRequestParts } from '../../src/mock/sigv4-verify.ts'
import { MOCK_AWS_KEYS } from '../../src/mock/dialects/bedrock.ts'
import { UpstreamFailure } from '../../src/upstream/failure.ts'
import type { BackendConfig } from '../../src/config/schema.ts'

const AWS_ENV = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_SHARED_CREDENTIALS_FILE', 'AWS_CONFIG_FILE', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_ROLE_ARN', 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', 'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_CREDENTIAL_EXPIRATION']
const saved = new Map(AWS_ENV.map((k) => [k, process.env[k]]))
const dir = mkdtempSync(join(tmpdir(), 'sluice-sigv4-'))

const signal = new AbortController().signal
const backend = (auth: NonNullable<BackendConfig['auth']>['awsSigV4'], region = 'us-west-2'): BackendConfig => ({ id: 'bed', type: 'bedrock', region, auth: { awsSigV4: auth } } as unknown as BackendConfig)

/** What the gateway puts on the wire for a signed request (client.ts adds content-type; undici the host). */
async function signedWire(creds: SigV4Credentials | ReturnType<typeof sigV4Credentials>, url: string, body: string, extra: Record<string, string> = {}): Promise<SignedRequestParts> {
  const signed = await creds!.headers({ method: 'POST', url, headers: extra, body }, signal)
  const u = new URL(url)
  return { method: 'POST', rawPath: u.pathname, rawQuery: u.search.slice(1), headers: { ...extra, ...signed, host: u.host, 'content-type': 'application/json' }, body: Buffer.from(body) }
}

const keys = (id: string) => MOCK_AWS_KEYS[id]
const STATIC = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: MOCK_AWS_KEYS.AKIDEXAMPLE!.secretAccessKey }
const TEMP = { accessKeyId: 'ASIAMOCKTEMPORARY', secretAccessKey: MOCK_AWS_KEYS.ASIAMOCKTEMPORARY!.secretAccessKey, sessionToken: MOCK_AWS_KEYS.ASIAMOCKTEMPORARY!.sessionToken! }
const ARN = 'arn:aws:bedrock:us-west-2:123456789012:application-inference-profile/a1b2c3d4e5'
const BODY = JSON.stringify({ messages: [{ role: 'user', content: [{ text: 'hi' }] }] })

describe('SigV4: the independent verifier', () => {
  it('reproduces the AWS documentation\'s worked example signature', () => {
    const req: SignedRequestParts = { method: 'GET', rawPath: '/', rawQuery: 'Action=ListUsers&Version=2010-05-08', headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8', host: 'iam.amazonaws.com', 'x-amz-date': '20150830T123600Z' }, body: Buffer.alloc(0) }
    const sts = stringToSign('20150830T123600Z', '20150830/us-east-1/iam/aws4_request', canonicalRequest(req, ['content-type', 'host', 'x-amz-date']))
    const sig = createHmac('sha256', signingKey('wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', '20150830', 'us-east-1', 'iam')).update(sts).digest('hex')
    assert.equal(sig, '5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7')
    const verdict = verifySigV4({ ...req, headers: { ...req.headers, authorization: `AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=${sig}` } }, keys, 'iam', Date.UTC(2015, 7, 30, 12, 40))
    assert.equal(verdict.ok, true)
    const late = verifySigV4({ ...req, headers: { ...req.headers, authorization: `AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=${sig}` } }, keys, 'iam', Date.UTC(2015, 7, 30, 13, 0))
    assert.equal(late.ok, false, 'more than 15 minutes off')
  })
})

describe('SigV4: the gateway\'s signer against the independent verifier', () => {
  before(() => {
    for (const k of AWS_ENV) delete process.env[k]
    process.env.AWS_SHARED_CREDENTIALS_FILE = join(dir, 'nonexistent-credentials')
    process.env.AWS_CONFIG_FILE = join(dir, 'nonexistent-config')
  })
  after(() => {
    for (const [k, v] of saved) if (v === undefined) delete process.env[k]; else process.env[k] = v
    rmSync(dir, { recursive: true, force: true })
  })

  it('static keys, an ARN model id (":" and "/" encoded into one path segment), service bedrock, the backend\'s region', async () => {
    const creds = sigV4Credentials(backend(STATIC))!
    const url = `http://127.0.0.1:9/model/${encodeModelId(ARN)}/converse`
    assert.ok(url.includes('arn%3Aaws%3Abedrock%3Aus-west-2%3A123456789012%3Aapplication-inference-profile%2Fa1b2c3d4e5'))
    const wire = await signedWire(creds, url, BODY)
    const verdict = verifySigV4(wire, keys, 'bedrock')
    assert.ok(verdict.ok, JSON.stringify(verdict))
    assert.equal(verdict.region, 'us-west-2')
    assert.equal(verdict.accessKeyId, 'AKIDEXAMPLE')
    assert.deepEqual(verdict.signedHeaders, ['content-type', 'host', 'x-amz-date'])
    assert.equal(wire.headers['x-amz-security-token'], undefined)
    // The same signature no longer verifies for another body, path or host.
    assert.equal(verifySigV4({ ...wire, body: Buffer.from(BODY.replace('hi', 'ho')) }, keys, 'bedrock').ok, false)
    assert.equal(verifySigV4({ ...wire, rawPath: wire.rawPath.replace('a1b2', 'a1b3') }, keys, 'bedrock').ok, false)
    assert.equal(verifySigV4({ ...wire, headers: { ...wire.headers, host: '127.0.0.1:10' } }, keys, 'bedrock').ok, false)
  })

  it('temporary keys: the session token is sent and signed; without it the verifier refuses', async () => {
    const wire = await signedWire(sigV4Credentials(backend(TEMP))!, 'http://127.0.0.1:9/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream', BODY)
    assert.equal(wire.headers['x-amz-security-token'], TEMP.sessionToken)
    const verdict = verifySigV4(wire, keys, 'bedrock')
    assert.ok(verdict.ok, JSON.stringify(verdict))
    assert.ok(verdict.signedHeaders.includes('x-amz-security-token'))
    const { 'x-amz-security-token': _dropped, ...without } = wire.headers
    const refused = verifySigV4({ ...wire, headers: without }, keys, 'bedrock')
    assert.equal(refused.ok, false)
  })

  it('a query-less path and a path with a query both verify; backend headers are signed too', async () => {
    const creds = sigV4Credentials(backend(STATIC))!
    const plain = await signedWire(creds, 'http://127.0.0.1:9/model/m/converse', BODY)
    assert.equal(plain.rawQuery, '')
    assert.ok(verifySigV4(plain, keys, 'bedrock').ok)
    const queried = await signedWire(creds, 'http://127.0.0.1:9/model/m/converse?b=2&a=1%2F', BODY, { 'x-team': 'blue' })
    const v = verifySigV4(queried, keys, 'bedrock')
    assert.ok(v.ok, JSON.stringify(v))
    assert.ok(v.signedHeaders.includes('x-team'))
  })

  it('{} uses the default chain: keys from the environment, fetched once and kept (memoised)', async () => {
    process.env.AWS_ACCESS_KEY_ID = TEMP.accessKeyId
    process.env.AWS_SECRET_ACCESS_KEY = TEMP.secretAccessKey
    process.env.AWS_SESSION_TOKEN = TEMP.sessionToken
    try {
      const creds = credentialsFor(backend({}))!
      const first = await signedWire(creds as SigV4Credentials, 'http://127.0.0.1:9/model/m/converse', BODY)
      assert.ok(verifySigV4(first, keys, 'bedrock').ok)
      process.env.AWS_ACCESS_KEY_ID = 'AKIDCHANGED'
      const second = await signedWire(creds as SigV4Credentials, 'http://127.0.0.1:9/model/m/converse', BODY)
      const v = verifySigV4(second, keys, 'bedrock')
      assert.ok(v.ok && v.accessKeyId === TEMP.accessKeyId, 'the chain was not asked again')
    } finally {
      delete process.env.AWS_ACCESS_KEY_ID
      delete process.env.AWS_SECRET_ACCESS_KEY
      delete process.env.AWS_SESSION_TOKEN
    }
  })

  it('a named profile from the shared credentials file', async () => {
    const file = join(dir, 'credentials')
    writeFileSync(file, `[default]\naws_access_key_id = AKIDWRONG\naws_secret_access_key = nope\n\n[sluice-test]\naws_access_key_id = ${STATIC.accessKeyId}\naws_secret_access_key = ${STATIC.secretAccessKey}\n`)
    process.env.AWS_SHARED_CREDENTIALS_FILE = file
    try {
      const creds = sigV4Credentials(backend({ profile: 'sluice-test' }))!
      const v = verifySigV4(await signedWire(creds, 'http://127.0.0.1:9/model/m/converse', BODY), keys, 'bedrock')
      assert.ok(v.ok && v.accessKeyId === 'AKIDEXAMPLE', JSON.stringify(v))
    } finally {
      process.env.AWS_SHARED_CREDENTIALS_FILE = join(dir, 'nonexistent-credentials')
    }
  })

  it('no credentials anywhere: a failure naming the backend only (fails over), not the chain\'s detail', async () => {
    const creds = sigV4Credentials(backend({}))!
    await assert.rejects(creds.headers({ method: 'POST', url: 'http://127.0.0.1:9/model/m/converse', headers: {}, body: BODY }, signal), (e: unknown) => {
      assert.ok(e instanceof UpstreamFailure)
      assert.equal(e.message, 'Backend "bed": no AWS credentials could be loaded for signing.')
      assert.equal(e.retriable, true)
      return true
    })
  })
})
