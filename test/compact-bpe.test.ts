import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { CompactBpe } from '../src/tokens/compact-bpe.ts'

// CompactBpe must hold exactly gpt-tokenizer's vocabulary and count exactly as gpt-tokenizer counts. The
// oracles are the package's own: its generated rank tables (bpeRanks/<name>.js, made by its codegen from
// the same `.tiktoken` files) and its encodings' countTokens (`encoding/<name>`, special tokens counted
// as text, as the gateway asks), plus two counts published by OpenAI.
const require = createRequire(import.meta.url)
const regexes = require('gpt-tokenizer/cjs/encodingParams/constants') as Record<string, RegExp>
const NAMES = ['o200k_base', 'cl100k_base'] as const
const SPLIT = { o200k_base: 'O200K_TOKEN_SPLIT_REGEX', cl100k_base: 'CL100K_TOKEN_SPLIT_REGEX' } as const

function compact(name: (typeof NAMES)[number]): CompactBpe {
  return new CompactBpe(readFileSync(require.resolve(`gpt-tokenizer/data/${name}.tiktoken`)), new RegExp(regexes[SPLIT[name]]!))
}

function reference(name: (typeof NAMES)[number]): (text: string) => number {
  const { countTokens } = require(`gpt-tokenizer/cjs/encoding/${name}`) as { countTokens(t: string, o: object): number }
  return (text) => countTokens(text, { disallowedSpecial: new Set() })
}

/** Texts of every kind the split regex and the merge treat differently, from a fixed seed. */
function corpus(): string[] {
  const texts: string[] = []
  const root = join(import.meta.dirname, '..')
  for (const dir of ['src/tokens', 'src/translate']) {
    for (const f of readdirSync(join(root, dir))) if (f.endsWith('.ts')) texts.push(readFileSync(join(root, dir, f), 'utf8'))
  }
  texts.push(readFileSync(join(root, 'README.md'), 'utf8'))
  let seed = 42
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff) / 0x7fffffff
  const atoms = ['a', 'b', 'Z', 'The', ' ', '  ', '\n', '\r\n', '\t', '1', '23', '4567', 'é', 'ß', '日本', '語', '😀', '👍🏽',
    '\uD800', '\uDC00', '<|endoftext|>', "'s", "'LL", '-', '/', '—', 'ا', 'ק', 'Ω', '\u0301', '0', '.', '"', '{', '}']
  for (let i = 0; i < 2000; i++) {
    let s = ''
    for (let n = 1 + Math.floor(rnd() * 60); n > 0; n--) s += atoms[Math.floor(rnd() * atoms.length)]
    texts.push(s)
  }
  for (let i = 0; i < 150; i++) {
    let s = ''
    for (let n = 1 + Math.floor(rnd() * 300); n > 0; n--) s += String.fromCharCode(Math.floor(rnd() * 0x3000))
    texts.push(s)
  }
  // Long runs without a pre-token boundary: the byte-pair merge does all the work.
  for (let i = 0; i < 100; i++) {
    let s = ''
    for (let n = 1 + Math.floor(rnd() * 600); n > 0; n--) s += String.fromCharCode(97 + Math.floor(rnd() * 26))
    texts.push(s)
  }
  return texts
}

for (const name of NAMES) {
  test(`${name}: every rank of gpt-tokenizer's generated table is found at its rank, and a non-token is not`, () => {
    const generated = (require(`gpt-tokenizer/cjs/bpeRanks/${name}`) as { default: Array<string | number[]> }).default
    const bpe = compact(name)
    assert.equal(bpe.size, generated.length)
    let wrong = 0
    let binary = 0
    for (let rank = 0; rank < generated.length; rank++) {
      const entry = generated[rank]!
      if (entry === '') continue // a hole in the ranks
      if (Array.isArray(entry)) binary++
      const bytes = typeof entry === 'string' ? Buffer.from(entry) : Uint8Array.from(entry)
      if (bpe.rank(bytes) !== rank) wrong++
    }
    assert.equal(wrong, 0)
    assert.ok(binary > 0, 'the table has byte entries that are not UTF-8, and they were checked')
    // 0xff never occurs in UTF-8 and no merge makes 32 of them.
    assert.equal(bpe.rank(new Uint8Array(32).fill(0xff)), -1)
  })

  test(`${name}: counts equal gpt-tokenizer's over code, prose, scripts, emoji, lone surrogates and long runs`, () => {
    const bpe = compact(name)
    const ref = reference(name)
    const texts = corpus()
    const differing = texts.filter((t) => bpe.count(t) !== ref(t))
    assert.deepEqual(differing.slice(0, 3), [])
    // The comparison is not vacuous: the corpus is large and its counts are not trivial.
    let total = 0
    for (const t of texts) total += bpe.count(t)
    assert.ok(texts.length > 2000 && total > 50_000, `${texts.length} texts, ${total} tokens`)
  })
}

test("OpenAI's published counts: 'tiktoken is great!' is 6 cl100k_base tokens, 'hello world' 2 in o200k_base", () => {
  // From OpenAI's cookbook, "How to count tokens with tiktoken" (cl100k_base), and tiktoken's README example
  // (`enc.encode("hello world")` is two tokens).
  assert.equal(compact('cl100k_base').count('tiktoken is great!'), 6)
  assert.equal(compact('o200k_base').count('hello world'), 2)
  assert.equal(compact('o200k_base').count(''), 0)
})
