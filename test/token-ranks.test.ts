import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { tiktokenRanks } from '../src/tokens/ranks.ts'

// The tables read from the `.tiktoken` files must be exactly the ones gpt-tokenizer generated from the same
// files (its bpeRanks/<name>.js literal, made by the package's own codegen): same length, same entry at
// every rank, text where text and bytes where bytes. Counts then equal the package's by construction.
const require = createRequire(import.meta.url)

for (const name of ['o200k_base', 'cl100k_base'] as const) {
  test(`${name}: the ranks read from ${name}.tiktoken equal gpt-tokenizer's generated table`, () => {
    const generated = (require(`gpt-tokenizer/cjs/bpeRanks/${name}`) as { default: Array<string | number[]> }).default
    const read = tiktokenRanks(name)
    assert.equal(read.length, generated.length)
    let differing = 0
    for (let i = 0; i < read.length; i++) if (JSON.stringify(read[i]) !== JSON.stringify(generated[i])) differing++
    assert.equal(differing, 0)
    // Both kinds of entries occur (a table of only strings would hide a wrong byte decoding).
    assert.ok(read.some((r) => Array.isArray(r)))
  })
}
