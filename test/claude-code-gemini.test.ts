import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SLUICE_KEY, startLedgeredGateway } from './helpers/providers.ts'
import { CLAUDE, runClaude } from './helpers/claude-code.ts'
import { geminiUsageOf, startRecordingMock } from './helpers/recording-mock.ts'


/**
 * Claude Code (the native 2.1.x binary), pointed at Sluice by ANTHROPIC_BASE_URL with a Sluice key, served by
 * the mock speaking Gemini (type: gemini): its Anthropic requests (tools with Claude Code's JSON schemas,
 * system blocks, thinking) are translated to generateContent, the marker in the prompt makes the mock answer
 * with a Write function call, Claude Code runs it and sends the result (a functionResponse), and the mock's
 * text ends the task. The ledger's rows equal the usageMetadata the Gemini backend sent.
 */
test('Claude Code completes a tool-using task served by a Gemini backend', { skip: !existsSync(CLAUDE) && 'claude binary not installed', timeout: 120_000 }, async () => {
  const gem = await startRecordingMock()
  const tg = await startLedgeredGateway(`
backends:
  - id: gemini-mock
    type: gemini
    url: ${gem.url}
    auth: { apiKey: AIza-claude-code-test }
    headers: { x-mock-completion-tokens: '9' }
    models: { claude-opus-4-8: gemini-2.5-pro, claude-sonnet-4-5: gemini-2.5-pro, claude-haiku-4-5: gemini-2.5-flash }
models:
  - { name: claude-opus-4-8, target: gemini-mock }
  - { name: claude-sonnet-4-5, target: gemini-mock }
  - { name: claude-haiku-4-5, target: gemini-mock }
consumers:
  - { id: coder, keys: [ { value: ${SLUICE_KEY} } ] }
`)
  const home = mkdtempSync(join(tmpdir(), 'sluice-ccg-home-'))
  const work = mkdtempSync(join(tmpdir(), 'sluice-ccg-work-'))
  try {
    const file = join(work, 'hello.txt')
    const args = { file_path: file, content: 'hello from gemini' }
    const prompt = `Create the file. [[mock-tool:Write ${JSON.stringify(args)}]]`
    const { code, out, err } = await runClaude({ prompt, cwd: work, home, baseUrl: tg.url, apiKey: SLUICE_KEY })
    assert.equal(code, 0, `claude failed: ${err.slice(0, 800)} ${out.slice(0, 800)}`)
    const result = JSON.parse(out) as { subtype: string; is_error: boolean; num_turns: number; result: string; usage: { input_tokens: number; output_tokens: number } }
    assert.equal(result.subtype, 'success')
    assert.equal(result.is_error, false, result.result)
    assert.equal(result.num_turns, 2)
    assert.equal(readFileSync(file, 'utf8'), 'hello from gemini') // the tool really ran

    // Everything reached the backend as Gemini requests, with the backend's key, never the Sluice key.
    const calls = gem.exchanges.filter((e) => e.url.includes(':streamGenerateContent') || e.url.includes(':generateContent'))
    assert.equal(calls.length, gem.exchanges.length)
    for (const e of calls) {
      assert.equal(e.headers['x-goog-api-key'], 'AIza-claude-code-test')
      assert.doesNotMatch(JSON.stringify(e.headers), new RegExp(SLUICE_KEY))
    }
    // The tool result went back as a functionResponse for Write.
    const last = JSON.parse(calls[calls.length - 1]!.body) as { contents: Array<{ role: string; parts: Array<Record<string, any>> }> }
    const responses = last.contents.flatMap((c) => c.parts).filter((p) => p.functionResponse)
    assert.equal(responses.at(-1)!.functionResponse.name, 'Write')

    // One ledger row per backend answer, each with the usage Gemini reported.
    const rows = [...(await tg.rows()).values()].filter((r) => r.status === 200)
    assert.equal(rows.length, calls.length)
    const reported = calls.map((e) => geminiUsageOf(e))
    const want = reported.map((u) => ({ p: u.promptTokenCount, c: (u.candidatesTokenCount ?? 0) + (u.thoughtsTokenCount ?? 0) })).sort((a, b) => a.p - b.p || a.c - b.c)
    const got = rows.map((r) => ({ p: r.promptTokens, c: r.completionTokens })).sort((a, b) => a.p - b.p || a.c - b.c)
    assert.deepEqual(got, want)
    for (const r of rows) assert.deepEqual({ consumer: r.consumer, backend: r.backend }, { consumer: 'coder', backend: 'gemini-mock' })
  } finally {
    await tg.close()
    await gem.close()
    rmSync(home, { recursive: true, force: true })
    rmSync(work, { recursive: true, force: true })
  }
})
