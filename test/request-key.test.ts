import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createRequestContext, type RequestContext } from '../src/core/context.ts'
import { RequestAbort } from '../src/core/request-abort.ts'
import { compileRequestKey } from '../src/policies/expr.ts'

// A counter key is computed for every request a limit sees. The common paths are read straight from the
// request; whatever they are read by, the key must be the value the contract gives the expression (section 2):
// the consumer's id, its product ('' without one), the public model, and CEL for anything else.
function request(principal: RequestContext['principal'], headers: Record<string, string> = {}): RequestContext {
  const ctx = createRequestContext({
    id: 'req-1', startedAt: 0, operation: 'chat.completions', model: 'gpt-4o-mini', body: {}, stream: false, clientWantsStreamUsage: false, client: undefined,
    info: { method: 'POST', path: '/v1/chat/completions', ip: '127.0.0.1', headers },
    signal: new RequestAbort(),
  })
  ctx.principal = principal
  return ctx
}

describe('compileRequestKey', () => {
  const teamA = request({ consumerId: 'team-a', productId: 'gold', metadata: { region: 'eu' } }, { 'x-team': 'blue' })
  const noProduct = request({ consumerId: 'team-b', productId: null, metadata: {} })
  const anonymous = request(null)

  it('reads consumer.id, consumer.product and request.model (spaces around them allowed)', () => {
    assert.equal(compileRequestKey('consumer.id')(teamA), 'team-a')
    assert.equal(compileRequestKey(' consumer.id ')(noProduct), 'team-b')
    assert.equal(compileRequestKey('consumer.product')(teamA), 'gold')
    assert.equal(compileRequestKey('consumer.product')(noProduct), '')
    assert.equal(compileRequestKey('request.model')(teamA), 'gpt-4o-mini')
    assert.equal(compileRequestKey('consumer.id')(anonymous), '')
  })

  it('evaluates any other path or CEL expression on the request', () => {
    assert.equal(compileRequestKey('consumer.metadata.region')(teamA), 'eu')
    assert.equal(compileRequestKey('request.headers["x-team"]')(teamA), 'blue')
    assert.equal(compileRequestKey('consumer.id + "/" + request.model')(teamA), 'team-a/gpt-4o-mini')
    assert.equal(compileRequestKey('request.method')(teamA), 'POST')
    // A missing header is no key part at all, not an error.
    assert.equal(compileRequestKey('request.headers["x-team"]')(noProduct), '')
  })
})
