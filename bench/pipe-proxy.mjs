#!/usr/bin/env node
// The floor of a naive node:http design: a keep-alive agent and two pipes, no parsing, no auth. The perf
// anchors measured 197 µs of CPU per request for this on this kind of machine; the gateway must not cost more.
// Run: node bench/pipe-proxy.mjs --upstream http://127.0.0.1:PORT [--port N]
import { Agent, createServer, request } from 'node:http'
import { parseArgs } from 'node:util'

const { values } = parseArgs({ options: { upstream: { type: 'string' }, port: { type: 'string', default: '0' } } })
if (!values.upstream) {
  process.stderr.write('pipe-proxy needs --upstream http://HOST:PORT\n')
  process.exit(1)
}
const up = new URL(values.upstream)
const agent = new Agent({ keepAlive: true, maxSockets: 128 })

const server = createServer({ keepAliveTimeout: 120_000 }, (req, res) => {
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
})
server.headersTimeout = 130_000
server.listen(Number(values.port), '127.0.0.1', () => {
  process.stdout.write(`pipe-proxy listening on ${server.address().port}\n`)
})
process.on('SIGTERM', () => server.close(() => process.exit(0)))
process.on('SIGINT', () => server.close(() => process.exit(0)))
