import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { IpFilter } from '../src/auth/ip-filter.ts'
import { ipFilterSchema } from '../src/auth/schema.ts'
import { startTestGateway, type TestGateway } from './helpers/gateway.ts'

const filter = (cfg: unknown) => new IpFilter(ipFilterSchema.parse(cfg))

describe('IpFilter', () => {
  it('allows listed ranges, denies the deny list first, and reads IPv4-mapped IPv6 as IPv4', () => {
    const f = filter({ allow: ['10.0.0.0/8', '2001:db8::/32'], deny: ['10.9.0.0/16'] })
    assert.equal(f.admits(f.clientIp('10.1.2.3', {})), true)
    assert.equal(f.admits(f.clientIp('::ffff:10.1.2.3', {})), true)
    assert.equal(f.admits(f.clientIp('10.9.1.1', {})), false)
    assert.equal(f.admits(f.clientIp('192.168.1.1', {})), false)
    assert.equal(f.admits(f.clientIp('2001:db8::7', {})), true)
    assert.equal(f.admits(f.clientIp('2001:db9::7', {})), false)
    const denyOnly = filter({ deny: ['203.0.113.7'] })
    assert.equal(denyOnly.admits('203.0.113.7'), false)
    assert.equal(denyOnly.admits('203.0.113.8'), true)
  })

  it('takes the address the trusted hop count points at, never what the client wrote further left', () => {
    const xff = { 'x-forwarded-for': '1.1.1.1, 10.0.0.5, 172.16.0.2' }
    assert.equal(filter({ trustProxy: false }).clientIp('127.0.0.1', xff), '127.0.0.1')
    assert.equal(filter({ trustProxy: true }).clientIp('127.0.0.1', xff), '172.16.0.2')
    assert.equal(filter({ trustProxy: 2 }).clientIp('127.0.0.1', xff), '10.0.0.5')
    assert.equal(filter({ trustProxy: 9 }).clientIp('127.0.0.1', xff), '1.1.1.1') // fewer hops than trusted: the leftmost
    assert.equal(filter({ trustProxy: 1 }).clientIp('127.0.0.1', {}), '127.0.0.1')
    assert.equal(filter({ allow: ['0.0.0.0/0'], trustProxy: 1 }).admits('not-an-ip'), false)
  })

  it('refuses malformed ranges at load', () => {
    assert.equal(ipFilterSchema.safeParse({ allow: ['10.0.0.0/33'] }).success, false)
    assert.equal(ipFilterSchema.safeParse({ allow: ['banana'] }).success, false)
    assert.equal(ipFilterSchema.safeParse({ allow: ['10.0.0.0/8', '::1'] }).success, true)
  })
})

describe('ipFilter and key expiry through the gateway', () => {
  let g: TestGateway
  before(async () => {
    g = await startTestGateway(`
backends: [ { id: mock-a, type: mock } ]
models: [ { name: gpt-4o-mini, target: mock-a } ]
products:
  - { id: office, ipFilter: { allow: [10.0.0.0/8], trustProxy: 1 } }
  - { id: local, ipFilter: { allow: [127.0.0.0/8] } }
  - { id: nowhere, ipFilter: { allow: [10.0.0.0/8] } }
consumers:
  - { id: office, product: office, keys: [ { value: sk-office-key-1 } ] }
  - { id: local, product: local, keys: [ { value: sk-local-key-01 } ] }
  - { id: nowhere, product: nowhere, keys: [ { value: sk-nowhere-key1 } ] }
  - id: rotating
    product: local
    keys: [ { value: sk-old-key-0001, expires: 2020-01-01 }, { value: sk-new-key-0001, expires: "2999-01-01T00:00:00Z" } ]
`)
  })
  after(() => g.close())

  const call = async (key: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${g.url}/v1/chat/completions`, {
      method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 }),
    })
    return { status: res.status, body: await res.json() as any }
  }

  it('admits by the forwarded address behind one trusted proxy, refuses others with 403 ip_not_allowed', async () => {
    assert.equal((await call('sk-office-key-1', { 'x-forwarded-for': '10.2.3.4' })).status, 200)
    const spoofed = await call('sk-office-key-1', { 'x-forwarded-for': '10.2.3.4, 192.168.0.9' })
    assert.equal(spoofed.status, 403)
    assert.equal(spoofed.body.error.code, 'ip_not_allowed')
    assert.equal((await call('sk-office-key-1')).status, 403) // no header: the peer (127.0.0.1) is the client
  })

  it('without trustProxy the socket peer decides, whatever x-forwarded-for says', async () => {
    assert.equal((await call('sk-local-key-01', { 'x-forwarded-for': '8.8.8.8' })).status, 200)
    const r = await call('sk-nowhere-key1', { 'x-forwarded-for': '10.0.0.1' })
    assert.equal(r.status, 403)
    assert.equal(r.body.error.code, 'ip_not_allowed')
  })

  it('an expired key is refused while the second key of the rotation works', async () => {
    const old = await call('sk-old-key-0001')
    assert.equal(old.status, 401)
    assert.equal(old.body.error.code, 'invalid_api_key')
    assert.match(old.body.error.message, /expired/)
    assert.equal((await call('sk-new-key-0001')).status, 200)
  })
})
