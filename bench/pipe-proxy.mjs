#!/usr/bin/env node
// The floor of a naive node:http design: a keep-alive agent and two pipes, no parsing, no auth. The perf
// anchors measured 197 µs of CPU per request for this on this kind of machine; the gateway must not cost more.
// With --json, issue 16's stretch floor: the same proxy, but it parses the request JSON and re-serialises it,
// and does the same to a JSON response (what any gateway that reads the model and the usage must at least
// do). A streamed (text/event-stream) response is still piped untouched: the stretch target is stated for
// non-streaming requests, and parsing frames would need an SSE parser this floor is not about.
// Run: node bench/pipe-proxy.mjs --upstream http://127.0.0.1:PORT [--port N] [--json]
import { Agent, createServer, request } from 'node:http'
import { parseArgs } from 'node:util'

const { values } = parseArgs({ options: { upstream: { type: 'string' }, port: { type: 'string', default: '0' }, json: { type: 'boolean', default: false } } })
if (!values.upstream) {
  process.stderr.write('pipe-proxy needs --upstream http://HOST:PORT\n')
  process.exit(1)
}
const up = new URL(values.upstream)
const agent = new Agent({ keepAlive: true, maxSockets: 128 })

function readAll(stream) {
  return new Promise((resolve, reject) => {
    const parts = []
    stream.on('data', (d) => parts.push(d))
    stream.on('end', () => resolve(parts.length === 1 ? parts[0] : Buffer.concat(parts)))
    stream.on('error', reject)
  })
}

function pipeHandler(req, res) {
  const out = request({
    host: up.hostname, port: up.port, method: req.method, path: req.url, headers: { ...req.headers, host: up.host }, agent,
  }, (upRes) => {
    res.writeHead(upRes.statusCode ?? 502, upRes.headers)
    upRes.pipe(res)
  })
  out.on('error', () => {
    if (!res.headersSent) res.writeHead(502)
    res.end()
  })
  req.pipe(out)
}

async function jsonHandler(req, res) {
  try {
    const reqBody = Buffer.from(JSON.stringify(JSON.parse((await readAll(req)).toString('utf8'))))
    const upRes = await new Promise((resolve, reject) => {
      const out = request({
        host: up.hostname, port: up.port, method: req.method, path: req.url, agent,
        headers: { ...req.headers, host: up.host, 'content-length': String(reqBody.length) },
      }, resolve)
      out.on('error', reject)
      out.end(reqBody)
    })
    if (String(upRes.headers['content-type'] ?? '').startsWith('text/event-stream')) {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers)
      upRes.pipe(res)
      return
    }
    const resBody = Buffer.from(JSON.stringify(JSON.parse((await readAll(upRes)).toString('utf8'))))
    res.writeHead(upRes.statusCode ?? 502, { ...upRes.headers, 'content-length': String(resBody.length) })
    res.end(resBody)
  } catch {
    if (!res.headersSent) res.writeHead(502)
    res.end()
  }
}

const server = createServer({ keepAliveTimeout: 120_000 }, values.json ? jsonHandler : pipeHandler)
server.headersTimeout = 130_000
server.listen(Number(values.port), '127.0.0.1', () => {
  process.stdout.write(`pipe-proxy${values.json ? ' (--json)' : ''} listening on ${server.address().port}\n`)
})
process.on('SIGTERM', () => server.close(() => process.exit(0)))
process.on('SIGINT', () => server.close(() => process.exit(0)))
