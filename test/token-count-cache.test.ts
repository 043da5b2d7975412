import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { countPromptTokens, countTextTokensAsync, pieceCacheStats, PIECE_CACHE_CHARS } from '../src/tokens/count.ts'

// The reference count comes from the tokenizer library itself, not from src/: the cache must never change a count.
const require = createRequire(import.meta.url)
const reference = (require('gpt-tokenizer/cjs/encoding/o200k_base') as { countTokens: (t: string) => number }).countTokens

/** Prose of about `chars` characters, different for each `seed` (so no two calls share a piece). */
function prose(chars: number, seed: number): string {
  const words = ['gateway', 'token', 'limit', 'backend', 'stream', 'answer', 'quota', 'replica', 'ledger', 'policy', 'model', 'request']
  let s = ''
  for (let i = 0; s.length < chars; i++) s += `${words[(i * 7 + seed) % words.length]} ${seed}x${i} `
  return s
}

test('a prompt counted again is answered from the piece cache, with the same count the tokenizer gives', async () => {
  const system = prose(20_000, 1) // a long system prompt, resent every turn
  const firstTurn = { messages: [{ role: 'system', content: system }, { role: 'user', content: 'first question' }] }
  const cold = await countPromptTokens('chat.completions', firstTurn, 'gpt-4o')
  const afterCold = pieceCacheStats('o200k_base')!
  // Framing per OpenAI's formula: 3 priming + 3 per message; the texts are the roles and contents.
  const expected = 3 + 3 + 3 + reference('system') + reference(system) + reference('user') + reference('first question')
  assert.equal(cold, expected)
  assert.ok(afterCold.misses >= 15, `the 20 KB prompt was cut into pieces and counted (misses ${afterCold.misses})`)

  const secondTurn = { messages: [...firstTurn.messages, { role: 'assistant', content: 'an answer' }, { role: 'user', content: 'second question' }] }
  const warm = await countPromptTokens('chat.completions', secondTurn, 'gpt-4o')
  const afterWarm = pieceCacheStats('o200k_base')!
  assert.equal(warm, expected + 3 + reference('assistant') + reference('an answer') + 3 + reference('user') + reference('second question'))
  // Only the three texts not seen before ('assistant', 'an answer', 'second question') reach the tokenizer.
  assert.equal(afterWarm.misses, afterCold.misses + 3, 'no piece of the resent prefix reached the tokenizer again')
  assert.ok(afterWarm.hits - afterCold.hits >= 15, `every long piece of the prefix was a hit (${afterWarm.hits - afterCold.hits})`)

  // The contrast: a text never seen before is counted, not found.
  const other = prose(5_000, 2)
  assert.equal(await countTextTokensAsync(other, 'gpt-4o'), reference(other))
  assert.ok(pieceCacheStats('o200k_base')!.misses > afterWarm.misses)
})

test('the piece cache stays within its bound however much distinct text goes through it', async () => {
  let seed = 100
  let total = 0
  while (total < PIECE_CACHE_CHARS * 1.3) {
    const text = prose(200_000, seed++)
    await countTextTokensAsync(text, 'gpt-4o')
    total += text.length
  }
  const s = pieceCacheStats('o200k_base')!
  assert.ok(s.chars <= PIECE_CACHE_CHARS, `${s.chars} cached characters, bound ${PIECE_CACHE_CHARS}`)
  // And it is in use, not emptied: most of the bound holds pieces.
  assert.ok(s.chars >= PIECE_CACHE_CHARS * 0.9, `${s.chars} cached characters`)
})

test('short pieces are remembered too, and their number is bounded as well as their characters', async () => {
  const { PIECE_CACHE_ENTRIES } = await import('../src/tokens/count.ts')
  const before = pieceCacheStats('o200k_base')!
  // A short role name never counted in this file: the first count is a miss, the second a hit (the
  // tokenizer's own cost per call dwarfs a lookup).
  assert.equal(await countTextTokensAsync('developer', 'gpt-4o'), reference('developer'))
  const mid = pieceCacheStats('o200k_base')!
  assert.equal(mid.misses, before.misses + 1)
  assert.equal(await countTextTokensAsync('developer', 'gpt-4o'), reference('developer'))
  assert.equal(pieceCacheStats('o200k_base')!.hits, mid.hits + 1)
  assert.equal(pieceCacheStats('o200k_base')!.misses, mid.misses)
  for (let i = 0; i < PIECE_CACHE_ENTRIES + 5_000; i++) await countTextTokensAsync(`q${i}`, 'gpt-4o')
  assert.ok(pieceCacheStats('o200k_base')!.entries <= PIECE_CACHE_ENTRIES, `${pieceCacheStats('o200k_base')!.entries} entries`)
})
