/**
 * What the Responses state costs: translating a 200-item stored conversation plus new input to the hub (per
 * request), reading a 50-response conversation back (one chain query) and writing one response, on SQLite and
 * PostgreSQL (127.0.0.1:5432, db test; its table is dropped after).
 *
 *   node --import tsx bench/responses-state.mts
 */
import { performance } from 'node:perf_hooks'
import { responsesRequestToHub } from '../src/translate/responses-to-openai.ts'
import { SqliteResponseStore } from '../src/responses/sqlite-store.ts'
import { PostgresResponseStore } from '../src/responses/postgres-store.ts'
const history: any[] = []
for (let i = 0; i < 100; i++) {
  history.push({ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'word '.repeat(200) }], id: `m${i}` })
  history.push({ type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'reply '.repeat(200) }], id: `a${i}` })
}
const body = { model: 'm', input: 'next', tools: [{ type: 'function', name: 'f', parameters: {} }] }
for (let i = 0; i < 200; i++) responsesRequestToHub(body, history)
let t = performance.now()
for (let i = 0; i < 1000; i++) responsesRequestToHub(body, history)
console.log('translate a 200-item conversation: µs/request', ((performance.now() - t) / 1000 * 1000).toFixed(1))
async function chain(store: any, label: string) {
  const now = Date.now()
  let prev: string | null = null
  for (let i = 0; i < 50; i++) {
    const id = `${label}${i}`
    await store.put({ id, consumerId: 'c', previousId: prev, backendId: null, model: 'm', createdAt: now, expiresAt: now + 1e9, input: [history[2 * i]], output: [history[2 * i + 1]], response: { id } })
    prev = id
  }
  for (let i = 0; i < 20; i++) await store.chain(prev, 'c', now, 201)
  t = performance.now()
  for (let i = 0; i < 200; i++) await store.chain(prev, 'c', now, 201)
  console.log(label, '50-response chain read: ms/read', ((performance.now() - t) / 200).toFixed(3))
  t = performance.now()
  for (let i = 0; i < 200; i++) await store.put({ id: `${label}w${i}`, consumerId: 'c', previousId: prev, backendId: null, model: 'm', createdAt: now, expiresAt: now + 1e9, input: [history[0]], output: [history[1]], response: { id: 'x' } })
  console.log(label, 'one write: ms', ((performance.now() - t) / 200).toFixed(3))
}
const s = new SqliteResponseStore('/tmp/rs/m.db'); await chain(s, 'sq' + Date.now()); await s.close()
const p = PostgresResponseStore.connect('postgres://postgres@127.0.0.1:5432/test', 'rsmeasure_'); await chain(p, 'pg' + Date.now())
await (p as any).pool.query('DROP TABLE rsmeasure_responses'); await p.close()
