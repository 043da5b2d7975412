// ClientRequests on its own: an answer settles only the request of the session and consumer that were
// asked; an unknown id is passed to the bus (another replica); cancellation and the timeout reject.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import pino from 'pino'
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js'
import { ClientRequests, isReply, relayedCapabilities, type RelayMessage, type ReplyBus } from '../../src/mcp/client-requests.ts'

const logger = pino({ level: 'silent' })

function asker(bus: ReplyBus | null = null) {
  const sent: Array<Record<string, unknown>> = []
  const requests = new ClientRequests(bus, logger)
  const ask = (o: { session?: string | null; consumer?: string; signal?: AbortSignal; timeoutMs?: number } = {}) => requests.ask({
    session: o.session === undefined ? 's1' : o.session, consumer: o.consumer ?? 'c1', method: 'elicitation/create', params: { message: 'ok?' },
    send: async (m: JSONRPCMessage) => { sent.push(m as unknown as Record<string, unknown>) }, signal: o.signal ?? new AbortController().signal, timeoutMs: o.timeoutMs ?? 60_000,
  })
  return { requests, sent, ask }
}

test('the request goes out under a gateway id; the asked consumer\'s answer resolves it, another consumer\'s or session\'s does not', async () => {
  const { requests, sent, ask } = asker()
  const pending = ask()
  await Promise.resolve()
  assert.equal(sent.length, 1)
  const id = sent[0]!.id as string
  assert.match(id, /^sluice-[0-9a-f-]{36}$/)
  assert.deepEqual({ ...sent[0], id: 'x' }, { jsonrpc: '2.0', id: 'x', method: 'elicitation/create', params: { message: 'ok?' } })
  let settled = false
  void pending.then(() => { settled = true }, () => { settled = true })
  await requests.deliver({ id, session: 's1', consumer: 'c2', message: { result: { action: 'accept' } } })
  await requests.deliver({ id, session: 's2', consumer: 'c1', message: { result: { action: 'accept' } } })
  await Promise.resolve()
  assert.equal(settled, false, 'answers from elsewhere are ignored')
  await requests.deliver({ id, session: 's1', consumer: 'c1', message: { result: { action: 'accept', content: { confirm: true } } } })
  assert.deepEqual(await pending, { action: 'accept', content: { confirm: true } })
})

test('an error answer rejects with the client\'s code and message', async () => {
  const { requests, sent, ask } = asker()
  const pending = ask()
  await Promise.resolve()
  await requests.deliver({ id: sent[0]!.id as string, session: 's1', consumer: 'c1', message: { error: { code: -32600, message: 'no' } } })
  await assert.rejects(pending, (e: { code: number; message: string }) => e.code === -32600 && /no/.test(e.message))
})

test('an answer this process did not ask is published for the other replicas; one it asked is not', async () => {
  const published: RelayMessage[] = []
  const bus: ReplyBus = { publish: async (r) => { published.push(r) }, subscribe: async () => {}, close: async () => {} }
  const { requests, sent, ask } = asker(bus)
  const pending = ask()
  await new Promise((r) => setImmediate(r))
  await requests.deliver({ id: 'sluice-elsewhere', session: 's1', consumer: 'c1', message: { result: {} } })
  assert.deepEqual(published.map((p) => p.kind === 'reply' ? p.id : null), ['sluice-elsewhere'])
  await requests.deliver({ id: sent[0]!.id as string, session: 's1', consumer: 'c1', message: { result: { ok: 1 } } })
  assert.deepEqual(await pending, { ok: 1 })
  assert.equal(published.length, 1)
})

test('cancellation and the timeout reject (and forget the request)', async () => {
  const { requests, sent, ask } = asker()
  const ac = new AbortController()
  const cancelled = ask({ signal: ac.signal })
  ac.abort()
  await assert.rejects(cancelled, (e: { code: number }) => e.code === -32800)
  await assert.rejects(ask({ timeoutMs: 20 }), (e: { code: number; data: { code: string } }) => e.code === -32011 && e.data.code === 'gateway_timeout')
  // A late answer to a forgotten request changes nothing and throws nothing.
  await requests.deliver({ id: sent[1]!.id as string, session: 's1', consumer: 'c1', message: { result: {} } })
})

test('only sampling, elicitation and roots are declared upstream, bounded in size; replies are told from requests', () => {
  assert.deepEqual(relayedCapabilities({ sampling: {}, elicitation: { form: {} }, roots: { listChanged: true }, experimental: { x: {} }, tasks: {} }), { sampling: {}, elicitation: { form: {} }, roots: { listChanged: true } })
  assert.equal(relayedCapabilities({ experimental: {} }), null)
  assert.equal(relayedCapabilities({ sampling: { big: 'x'.repeat(5000) } }), null)
  assert.equal(relayedCapabilities('sampling'), null)
  assert.equal(isReply({ jsonrpc: '2.0', id: 1, result: {} }), true)
  assert.equal(isReply({ jsonrpc: '2.0', id: 1, error: { code: 1, message: 'x' } }), true)
  assert.equal(isReply({ jsonrpc: '2.0', id: 1, method: 'tools/list' }), false)
  assert.equal(isReply({ jsonrpc: '2.0', method: 'notifications/initialized' }), false)
})
