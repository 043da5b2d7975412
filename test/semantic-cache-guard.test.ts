import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { guardCheck, promptFacts } from '../src/cache/guard.ts'

interface Pair { a: string; b: string; expect: 'hit' | 'miss'; kind: string }
const { pairs } = JSON.parse(readFileSync(new URL('./fixtures/semantic-pairs.json', import.meta.url), 'utf8')) as { pairs: Pair[] }
const check = (a: string, b: string) => guardCheck(promptFacts(a), promptFacts(b))

describe('semantic-cache guard', () => {
  it('the pair set has at least 100 labelled pairs of both kinds', () => {
    assert.ok(pairs.length >= 100)
    assert.ok(pairs.filter((p) => p.expect === 'hit').length >= 40)
    assert.ok(pairs.filter((p) => p.expect === 'miss').length >= 60)
  })

  it('rejects every one-fact change of the pair set, whatever the similarity', () => {
    const passed = pairs.filter((p) => p.expect === 'miss' && check(p.a, p.b).ok)
    assert.deepEqual(passed.map((p) => `${p.a} | ${p.b}`), [])
  })

  it('lets most paraphrases through (≥ 85%)', () => {
    const hits = pairs.filter((p) => p.expect === 'hit')
    const ok = hits.filter((p) => check(p.a, p.b).ok).length
    assert.ok(ok / hits.length >= 0.85, `${ok}/${hits.length}`)
  })

  it('is symmetric on the pair set', () => {
    for (const p of pairs) assert.equal(check(p.a, p.b).ok, check(p.b, p.a).ok, `${p.a} | ${p.b}`)
  })

  it('names the reason', () => {
    assert.deepEqual(check('Is 97 prime?', 'Is 91 prime?'), { ok: false, reason: 'number', detail: '[97] vs [91]' })
    assert.equal((check('Translate "yes"', 'Translate "no"') as { reason: string }).reason, 'quoted')
    assert.equal((check('Explain foo_bar()', 'Explain foo_baz()') as { reason: string }).reason, 'literal')
    assert.equal((check('Tell me about Paris hotels', 'Tell me about Rome hotels') as { reason: string }).reason, 'entity')
    assert.equal((check('Why does it work?', "Why doesn't it work?") as { reason: string }).reason, 'negation')
    assert.equal((check('How to enable logging', 'How to disable logging') as { reason: string }).reason, 'polarity')
    assert.equal((check('weather in oslo today', 'weather in bergen today') as { reason: string }).reason, 'substitution')
  })

  it('equates digits and number words, capitalised and lower-case names, contractions', () => {
    assert.ok(check('Give me five ideas', 'Give me 5 ideas').ok)
    assert.ok(check('How do I learn Python?', 'how do i learn python').ok)
    assert.ok(check("What's the capital of Peru?", 'What is the capital of Peru?').ok)
    assert.ok(check('I do not like it', "I don't like it").ok)
    assert.ok(check('Price is 1,000 dollars', 'Price is 1000 dollars').ok)
  })

  it('copes with empty, long and odd input without throwing', () => {
    assert.ok(check('', '').ok)
    const long = 'word '.repeat(5_000)
    assert.ok(check(long, long).ok)
    assert.ok(check('🙂 ¿Qué tal? “quoted” ‘x’', '🙂 ¿Qué tal? “quoted” ‘x’').ok)
  })
})
