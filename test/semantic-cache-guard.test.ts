import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { guardCheck, promptFacts } from '../src/cache/guard.ts'

interface Pair { a: string; b: string; expect: 'hit' | 'miss'; kind: string }
const pairs = ['semantic-pairs.json', 'semantic-pairs-faq.json'].flatMap((f) => (JSON.parse(readFileSync(new URL(`./fixtures/${f}`, import.meta.url), 'utf8')) as { pairs: Pair[] }).pairs)
const check = (a: string, b: string) => guardCheck(promptFacts(a), promptFacts(b))

describe('semantic-cache guard', () => {
  it('the pair sets hold at least 300 labelled pairs, about half of each kind', () => {
    assert.ok(pairs.length >= 300, String(pairs.length))
    assert.ok(pairs.filter((p) => p.expect === 'hit').length >= 150)
    assert.ok(pairs.filter((p) => p.expect === 'miss').length >= 150)
  })

  it('rejects every one-fact change of the pair set, whatever the similarity', () => {
    const passed = pairs.filter((p) => p.expect === 'miss' && check(p.a, p.b).ok)
    assert.deepEqual(passed.map((p) => `${p.a} | ${p.b}`), [])
  })

  it('lets most paraphrases through (≥ 95%)', () => {
    const hits = pairs.filter((p) => p.expect === 'hit')
    const ok = hits.filter((p) => check(p.a, p.b).ok).length
    assert.ok(ok / hits.length >= 0.95, `${ok}/${hits.length}`)
  })

  it("reads a sentence-initial capital as a name only when the other prompt swaps it for another", () => {
    // The seeds' example: "Forgot" is no name, and forgetting a password asks how to reset it.
    assert.ok(check('How do I reset my password?', 'Forgot my password, what now?').ok)
    assert.ok(check('How do I reset my password?', 'Password reset help').ok)
    assert.deepEqual(check('Tokyo is in which country?', 'Osaka is in which country?'), { ok: false, reason: 'entity', detail: 'tokyo → osaka' })
    assert.equal((check('Forgot my password, what now?', 'Forgot my username, what now?') as { reason: string }).reason, 'substitution')
    assert.ok(check('Tokyo is in which country?', 'Tokyo is in which country, please?').ok)
    assert.equal((check('Apple stock price today', 'Tesla stock price today') as { reason: string }).reason, 'entity')
    // A sentence-initial name swapped for a mid-sentence one is still caught by the mid-sentence rule.
    assert.equal((check('Paris or London: which is bigger?', 'Which is bigger, London or Rome?') as { reason: string }).reason, 'entity')
    assert.ok(check('Forgot my password, what now?', 'Lost my password, what now?').ok)
    assert.equal((check('Forgot my password, what now?', 'Changed my password, what now?') as { reason: string }).reason, 'substitution')
    assert.equal((check('Berlin weather this weekend', 'What is the weather in Madrid this weekend?') as { reason: string }).reason, 'entity')
  })

  it('treats equivalent support phrasings as one wording, and only those', () => {
    assert.ok(check('How do I log in to my account?', 'How do I sign in to my account?').ok)
    assert.equal((check('How do I log in to my account?', 'How do I log out of my account?') as { reason: string }).reason, 'substitution')
    assert.ok(check('How do I update my billing address?', 'How can I change my billing address?').ok)
    assert.equal((check('How do I update my billing address?', 'How do I delete my billing address?') as { reason: string }).reason, 'polarity')
    assert.ok(check("I can't log in to my account.", "I'm unable to log in to my account.").ok)
    assert.equal((check('I can log in to my account.', "I'm unable to log in to my account.") as { reason: string }).reason, 'negation')
    assert.equal((check('Write a short poem about the ocean.', 'Write a short poem about the sea.') as { reason: string }).reason, 'substitution')
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
