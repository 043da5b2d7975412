import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { countPromptTokens, estimatePromptTokens, countTextTokens } from '../../src/tokens/count.ts'
import { makeRedactor, redactEmails } from '../../src/policies/log-messages/redact.ts'
import { canonicalJson } from '../../src/cache/request-key.ts'
import { jsonDepthExceeds } from '../../src/server/body-guard.ts'

// The reference count comes straight from the tokenizer library, not from src/.
const require = createRequire(import.meta.url)
const { countTokens } = require('gpt-tokenizer/cjs/encoding/o200k_base') as { countTokens: (t: string, o: unknown) => number }
const ref = (t: string) => countTokens(t, { disallowedSpecial: new Set() })

const PROSE = 'The quick brown fox jumps over the lazy dog; it\'s 12345 tokens, isn\'t it? Yes: "quoted", (parens) and emoji 🙂. '

/** Longest the event loop was held while `fn` ran (ms), from Node's own delay histogram at 1 ms resolution. */
async function longestStall(fn: () => Promise<unknown> | unknown): Promise<number> {
  const h = monitorEventLoopDelay({ resolution: 1 })
  h.enable()
  await new Promise((r) => setImmediate(r))
  await fn()
  await new Promise((r) => setTimeout(r, 5))
  h.disable()
  return h.max / 1e6
}

test('normal prompts count exactly as the tokenizer counts the whole text, split into pieces or not', async () => {
  for (const text of [PROSE, PROSE.repeat(40), PROSE.repeat(400)]) {
    const body = { messages: [{ role: 'user', content: text }] }
    // 3 priming + 3 per message + role + content, per OpenAI's chat formatting.
    const want = 3 + 3 + ref('user') + ref(text)
    assert.equal(await countPromptTokens('chat.completions', body, 'gpt-4o-mini'), want, `${text.length} chars`)
  }
  assert.equal(countTextTokens(PROSE, 'gpt-4o'), ref(PROSE))
})

test('adversarial prompts are counted without holding the event loop, with a bounded estimate', async () => {
  let random = ''
  for (let i = 0; i < 100_000; i++) random += String.fromCharCode(97 + ((i * 7919 + (i >> 3) * 31) % 26))
  for (const [name, text] of [['60k repeated letters', 'a'.repeat(60_000)], ['100k letters', random], ['2 MB of letters', 'b'.repeat(2_000_000)]] as const) {
    // Once unmeasured: JIT compilation of the tokenizer's code paths is start-up cost, not this input's.
    await countPromptTokens('chat.completions', { messages: [{ role: 'user', content: text.slice(0, 20_000) }] }, 'gpt-4o')
    let n = 0
    const stall = await longestStall(async () => { n = await countPromptTokens('chat.completions', { messages: [{ role: 'user', content: text }] }, 'gpt-4o') })
    // Sub-word tokens: more than one per 16 characters, fewer than one per character.
    assert.ok(n > text.length / 16 && n < text.length, `${name}: ${n} tokens`)
    assert.ok(stall < 50, `${name}: the event loop was held ${stall.toFixed(1)} ms at most`)
    const sync = await longestStall(() => estimatePromptTokens('chat.completions', { messages: [{ role: 'user', content: text }] }, 'gpt-4o'))
    assert.ok(sync < 50, `${name}: the synchronous estimate held the loop ${sync.toFixed(1)} ms`)
  }
})

test('built-in redaction is linear: adversarial inputs the size of the body limit (10 MiB) take well under a second each', () => {
  const redact = makeRedactor([])
  const N = 10 * 1024 * 1024
  const cases: Record<string, string> = {
    'a.a.a.': 'a.'.repeat(N / 2), letters: 'a'.repeat(N), 'a@a@': 'a@'.repeat(N / 2), '@ then dots': ('a@' + 'a.'.repeat(100)).repeat(Math.floor(N / 202)),
    'bearer + spaces': ('bearer' + ' '.repeat(50)).repeat(Math.floor(N / 56)), 'sk-sk-': 'sk-'.repeat(Math.floor(N / 3)), 'secret + spaces': ('secret' + ' '.repeat(60)).repeat(Math.floor(N / 66)),
    digits: '1 '.repeat(N / 2), 'ghp_ runs': ('ghp_' + 'a'.repeat(29) + '_').repeat(Math.floor(N / 34)),
  }
  for (const [name, text] of Object.entries(cases)) {
    const t0 = performance.now()
    redact(text)
    const ms = performance.now() - t0
    // Quadratic matching on 10 MiB would take hours; linear takes tens to hundreds of milliseconds.
    assert.ok(ms < 3000, `${name}: ${ms.toFixed(0)} ms`)
  }
})

test('the e-mail scanner redacts addresses and leaves look-alikes', () => {
  assert.equal(redactEmails('mail john.doe+x@example.co.uk now'), 'mail [REDACTED:email] now')
  assert.equal(redactEmails('a@b.c, x@y.com.'), 'a@b.c, [REDACTED:email].')
  assert.equal(redactEmails('no address @ here, user@localhost'), 'no address @ here, user@localhost')
  const redact = makeRedactor([])
  assert.equal(redact('key sk-abcdefghijklmnopqrstuvwx and ops@corp.example'), 'key [REDACTED:api-key] and [REDACTED:email]')
})

test('walks over client JSON do not recurse: 100,000 levels', () => {
  let deep: Record<string, unknown> = {}
  const root = deep
  for (let i = 0; i < 100_000; i++) { const next = {}; deep.a = next; deep = next }
  assert.equal(canonicalJson(root).length, 100_000 * 6 + 2) // {"a": … } per level, {} innermost
  assert.equal(canonicalJson({ b: 1, a: [1, { d: null, c: 'x' }] }), '{"a":[1,{"c":"x","d":null}],"b":1}')
  assert.equal(jsonDepthExceeds('['.repeat(65) + ']'.repeat(65), 64), true)
  assert.equal(jsonDepthExceeds('['.repeat(64) + ']'.repeat(64), 64), false)
  assert.equal(jsonDepthExceeds(JSON.stringify({ s: '[[[[[[[[' + '\\"' + '{{{{' }), 2), false)
})
