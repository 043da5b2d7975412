// A large multipart upload through the gateway to a backend that discards it: the gateway's memory must
// stay flat (the upload is streamed, or spooled to disk), whatever the upload's size.
//   node --import tsx bench/media-upload.ts [MiB]      (default 200)
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import pino from 'pino'
import { loadConfigText } from '../src/config/load.ts'
import { createGateway } from '../src/server/gateway.ts'
import { MemoryKeyStore } from '../src/stores/memory/keys.ts'

const MIB = 1024 * 1024
const size = Number(process.argv[2] ?? 200) * MIB
const BOUNDARY = 'bench-boundary'

const sink = http.createServer((req, res) => {
  let n = 0
  req.on('data', (c: Buffer) => { n += c.length })
  req.on('end', () => {
    const body = JSON.stringify({ text: `received ${n} bytes`, usage: { type: 'duration', seconds: 60 } })
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body)
  })
})
await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r))
const sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/v1`

const res = loadConfigText(`
listen: { host: 127.0.0.1, port: 0, requestTimeout: 300s }
admin: { enabled: false }
ledger: { type: none }
media: { maxUploadBytes: ${size + MIB} }
backends: [ { id: sink, type: openai-compatible, url: ${sinkUrl} } ]
models: [ { name: whisper-1, target: sink } ]
consumers: [ { id: bench, keys: [ { value: sk-bench-media-key } ] } ]
`, { env: process.env })
if (!res.ok) throw new Error(JSON.stringify(res.problems))
const gw = await createGateway({ config: res.config, logger: pino({ level: 'silent' }), keyStore: new MemoryKeyStore(), processGuards: false })
const { url } = await gw.listen()

function part(name: string, value: string): Buffer {
  return Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`)
}
const fileHead = Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\nContent-Type: audio/wav\r\n\r\n`)
const tail = Buffer.from(`\r\n--${BOUNDARY}--\r\n`)
const piece = Buffer.alloc(64 * 1024, 1)

async function upload(modelFirst: boolean): Promise<{ seconds: number; status: number; delivery: string; peakRssMiB: number; peakArrayBuffersMiB: number }> {
  const head = modelFirst ? [part('model', 'whisper-1'), fileHead] : [fileHead]
  const after = modelFirst ? [tail] : [Buffer.from('\r\n'), part('model', 'whisper-1').subarray(0), Buffer.from(`--${BOUNDARY}--\r\n`)]
  const length = head.reduce((n, b) => n + b.length, 0) + size + after.reduce((n, b) => n + b.length, 0)
  global.gc?.()
  const base = process.memoryUsage()
  let peakRss = base.rss
  let peakAb = base.arrayBuffers
  const sampler = setInterval(() => {
    const m = process.memoryUsage()
    peakRss = Math.max(peakRss, m.rss)
    peakAb = Math.max(peakAb, m.arrayBuffers)
  }, 10)
  const t0 = performance.now()
  const answer = await new Promise<{ status: number; delivery: string }>((resolve, reject) => {
    const req = http.request(`${url}/v1/audio/transcriptions`, {
      method: 'POST',
      headers: { authorization: 'Bearer sk-bench-media-key', 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, 'content-length': length },
    }, (r) => { r.resume(); r.on('end', () => resolve({ status: r.statusCode!, delivery: String(r.headers['x-sluice-upload']) })) })
    req.on('error', reject)
    for (const b of head) req.write(b)
    let sent = 0
    const pump = () => {
      while (sent < size) {
        const n = Math.min(piece.length, size - sent)
        sent += n
        if (!req.write(n === piece.length ? piece : piece.subarray(0, n))) return void req.once('drain', pump)
      }
      for (const b of after) req.write(b)
      req.end()
    }
    pump()
  })
  clearInterval(sampler)
  const seconds = (performance.now() - t0) / 1000
  // Trailing fields after a spooled file end with a CRLF the sink counts too; what matters is the memory.
  return { seconds, ...answer, peakRssMiB: (peakRss - base.rss) / MIB, peakArrayBuffersMiB: (peakAb - base.arrayBuffers) / MIB }
}

for (const modelFirst of [true, false]) {
  const r = await upload(modelFirst)
  console.log(`${modelFirst ? 'model first (streamed)' : 'file first (spooled)  '}: ${size / MIB} MiB, status ${r.status}, ${r.delivery}, ${(size / MIB / r.seconds).toFixed(0)} MiB/s, ` +
    `RSS +${r.peakRssMiB.toFixed(1)} MiB at most, array buffers +${r.peakArrayBuffersMiB.toFixed(1)} MiB at most`)
}
await gw.close()
sink.close()
