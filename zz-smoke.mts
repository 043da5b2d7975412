import { startTestGateway } from './test/helpers/gateway.ts'
import { openRealtime } from './test/helpers/realtime.ts'
const g = await startTestGateway(`
backends:
  - { id: rt-a, type: mock }
models:
  - { name: gpt-realtime, target: rt-a }
consumers:
  - { id: team-a, keys: [ { value: sk-realtime-team-a } ] }
`)
console.log('gw', g.url); const c = await openRealtime(`${g.url}/v1`, 'sk-realtime-team-a', 'gpt-realtime')
await c.next('session.created')
c.send({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'] } })
await c.next('session.updated')
c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hello there' }] } })
c.send({ type: 'response.create' })
const done = await c.next('response.done')
console.log(c.events.map((e) => e.type).join(' '))
console.log(JSON.stringify(done.response.usage))
c.close()
console.log(await c.closed())
await g.close()
