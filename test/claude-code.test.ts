import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { encode } from 'gpt-tokenizer'
import { SLUICE_KEY, startLedgeredGateway } from './helpers/providers.ts'
import { CLAUDE, runClaude } from './helpers/claude-code.ts'


/**
 * Claude Code (the native 2.1.x binary) pointed at Sluice by ANTHROPIC_BASE_URL with a Sluice key, served by the
 * mock speaking OpenAI: the prompt carries a marker that makes the mock answer with a Write tool call, Claude Code
 * runs the tool, sends the tool result, and the mock's text answer ends the task. Nothing leaves loopback: the
 * non-essential traffic switches are on, and any proxy-aware request elsewhere would hit a dead loopback port.
 */
test('Claude Code completes a tool-using task through /v1/messages served by an OpenAI backend', { skip: !existsSync(CLAUDE) && 'claude binary not installed', timeout: 120_000 }, async () => {
  // Whatever model Claude Code asks for is a model entry here, mapped to the mock's own model name.
  const tg = await startLedgeredGateway(`
backends:
  - id: openai-mock
    type: mock
    headers: { x-mock-completion-tokens: '9' }
    models: { claude-opus-4-8: gpt-4o-mini, claude-sonnet-4-5: gpt-4o-mini, claude-haiku-4-5: gpt-4o-mini }
models:
  - { name: claude-opus-4-8, target: openai-mock }
  - { name: claude-sonnet-4-5, target: openai-mock }
  - { name: claude-haiku-4-5, target: openai-mock }
consumers:
  - { id: coder, keys: [ { value: ${SLUICE_KEY} } ] }
`)
  // A recording hop in front of the gateway: what Claude Code sends, and that it never sends anything else.
  const seen: { method: string; url: string; beta: string | undefined; key: string | undefined }[] = []
  const target = new URL(tg.url)
  const hop = http.createServer((req, res) => {
    seen.push({ method: req.method!, url: req.url!, beta: req.headers['anthropic-beta'] as string | undefined, key: req.headers['x-api-key'] as string | undefined })
    const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode!, r.headers)
      r.pipe(res)
    })
    req.pipe(up)
  })
  await new Promise<void>((r) => hop.listen(0, '127.0.0.1', () => r()))
  const home = mkdtempSync(join(tmpdir(), 'sluice-cc-home-'))
  const work = mkdtempSync(join(tmpdir(), 'sluice-cc-work-'))
  try {
    const file = join(work, 'hello.txt')
    const args = { file_path: file, content: 'hello from sluice' }
    const prompt = `Create the file. [[mock-tool:Write ${JSON.stringify(args)}]]`
    const { code, out, err } = await runClaude({ prompt, cwd: work, home, baseUrl: `http://127.0.0.1:${(hop.address() as { port: number }).port}`, apiKey: SLUICE_KEY })
    assert.equal(code, 0, `claude failed: ${err.slice(0, 500)} ${out.slice(0, 500)}`)
    const result = JSON.parse(out) as { subtype: string; is_error: boolean; num_turns: number; result: string; usage: { input_tokens: number; output_tokens: number } }
    assert.equal(result.subtype, 'success')
    assert.equal(result.is_error, false)
    assert.equal(result.num_turns, 2) // the tool call turn, then the text after the tool result
    assert.equal(readFileSync(file, 'utf8'), 'hello from sluice') // the tool really ran
    assert.equal(encode(result.result).length, 9) // the mock's final text, 9 tokens as configured

    // What Claude Code sent: POSTs to /v1/messages (with its beta query and headers) and nothing else.
    assert.ok(seen.length >= 2)
    for (const s of seen) {
      assert.equal(s.method, 'POST')
      assert.match(s.url, /^\/v1\/messages(\?beta=true)?$/)
      assert.equal(s.key, SLUICE_KEY)
      assert.match(s.beta ?? '', /claude-code-/)
    }
    // The ledger has one row per request, with the usage the backend reported, which is what Claude Code saw.
    const rows = [...(await tg.rows()).values()]
    assert.equal(rows.length, seen.length)
    for (const r of rows) {
      assert.equal(r.status, 200)
      assert.equal(r.consumer, 'coder')
      assert.equal(r.backend, 'openai-mock')
    }
    assert.equal(rows.reduce((n, r) => n + r.promptTokens, 0), result.usage.input_tokens)
    assert.equal(rows.reduce((n, r) => n + r.completionTokens, 0), result.usage.output_tokens)
    // The tool call turn's output is the call itself: name plus arguments, with the mock's tokenizer.
    const callTokens = encode('Write').length + encode(JSON.stringify(args)).length
    assert.deepEqual(rows.map((r) => r.completionTokens).sort((a, b) => a - b), [9, callTokens].sort((a, b) => a - b))
  } finally {
    hop.close()
    await tg.close()
    rmSync(home, { recursive: true, force: true })
    rmSync(work, { recursive: true, force: true })
  }
})
