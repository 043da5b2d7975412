import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { sha256Base64, sha256Hex } from '../src/core/sha256.ts'

// The published test vectors (FIPS 180-2, appendix B.1; the empty message), and a key with non-ASCII
// characters checked against the Hash object the code used before: a stored or configured key digest must
// not change with the faster one-shot call.
describe('sha256Hex / sha256Base64', () => {
  it('match the FIPS 180-2 vectors', () => {
    assert.equal(sha256Hex('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
    assert.equal(sha256Hex(''), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
    assert.equal(sha256Base64('abc'), 'ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=')
  })

  it('hash the UTF-8 bytes of any key, as createHash does', () => {
    for (const key of ['sk-bench-0123456789abcdef', 'clé-été-日本語-🔑', 'x'.repeat(10_000)]) {
      assert.equal(sha256Hex(key), createHash('sha256').update(key, 'utf8').digest('hex'))
      assert.equal(sha256Base64(key), createHash('sha256').update(key, 'utf8').digest('base64'))
    }
  })
})
