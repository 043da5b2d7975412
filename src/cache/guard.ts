/**
 * The semantic-cache guard: before a similar-enough stored prompt may answer a new one, both must agree on
 * the things embeddings are known to blur (USE-Lite scores "France"/"Germany" or "enable"/"disable" variants
 * of one prompt at ~0.87 cosine, closer than many true paraphrases):
 *  - numbers (digits and number words, "5" = "five"),
 *  - quoted strings and code-like literals (`foo_bar`, v2.1, /etc/hosts, camelCase),
 *  - named entities (capitalised words not at a sentence start; sentence-initial ones only when both
 *    prompts open with one the other lacks: "Forgot my password" is no name, "Tokyo is…"/"Osaka is…" are),
 *  - negation (not, never, no, n't, without, …: the count must match),
 *  - polarity pairs (enable/disable, increase/decrease, largest/smallest, …),
 *  - a one-for-one substitution of content words in the same place ("capital of france" → "of spain"),
 *    which catches lower-case names and facts the lists above miss.
 * Any disagreement makes the lookup a miss: a wrong hit is worse than a miss.
 */

export type GuardReason = 'number' | 'quoted' | 'literal' | 'entity' | 'negation' | 'polarity' | 'substitution'
export type GuardVerdict = { readonly ok: true } | { readonly ok: false; readonly reason: GuardReason; readonly detail: string }

/** What the guard extracts from a prompt; computed once per prompt. */
export interface PromptFacts {
  readonly numbers: readonly string[]
  readonly quoted: readonly string[]
  readonly literals: readonly string[]
  /** Lower-cased entity words. */
  readonly entities: readonly string[]
  /**
   * Capitalised words at a sentence start that are not common words ("Forgot my password", "Tokyo is in…"):
   * maybe a name, maybe not. Only a swap counts: each prompt has one the other lacks.
   */
  readonly initials: readonly string[]
  /** Lower-cased tokens, contractions expanded, for presence checks and alignment. */
  readonly tokens: readonly string[]
  /** `tokens` with equivalent phrasings written one way ("log in" = "sign in", "info" = "information"). */
  readonly canon: readonly string[]
  readonly negations: number
  /** `axis:+` / `axis:-` markers, sorted. */
  readonly polarity: readonly string[]
}

const NUMBER_WORDS: Record<string, number> = {
  zero: 0, one: 1, two: 2, three: 3, four: 4, five: 5, six: 6, seven: 7, eight: 8, nine: 9, ten: 10,
  eleven: 11, twelve: 12, thirteen: 13, fourteen: 14, fifteen: 15, sixteen: 16, seventeen: 17, eighteen: 18,
  nineteen: 19, twenty: 20, thirty: 30, forty: 40, fifty: 50, sixty: 60, seventy: 70, eighty: 80, ninety: 90,
  hundred: 100, thousand: 1000, million: 1e6, billion: 1e9, trillion: 1e12, dozen: 12, half: 0.5, twice: 2,
  first: 1, second: 2, third: 3, fourth: 4, fifth: 5, sixth: 6, seventh: 7, eighth: 8, ninth: 9, tenth: 10,
  double: 2, triple: 3,
}
const ROMAN: Record<string, number> = { II: 2, III: 3, IV: 4, VI: 6, VII: 7, VIII: 8, IX: 9, XI: 11, XII: 12, XIII: 13, XIV: 14, XV: 15, XVI: 16, XX: 20 }

const NEGATIONS = new Set(['unable', 'not', 'no', 'never', 'without', 'none', 'nobody', 'nothing', 'neither', 'nor', 'nowhere', 'cannot', 'nope', 'except', 'excluding', 'lack', 'lacks', 'lacking', 'absent'])

/** Words that flip the meaning of an otherwise identical prompt: [axis, +words, −words]. */
const POLARITY: ReadonlyArray<readonly [string, readonly string[], readonly string[]]> = [
  ['enable', ['enable', 'enabled', 'enabling', 'enables', 'activate', 'activated', 'turn on', 'switch on'], ['disable', 'disabled', 'disabling', 'disables', 'deactivate', 'deactivated', 'turn off', 'switch off']],
  ['increase', ['increase', 'increases', 'increasing', 'raise', 'raising', 'grow', 'higher', 'more', 'upgrade', 'upgrading'], ['decrease', 'decreases', 'decreasing', 'lower', 'lowering', 'reduce', 'reducing', 'shrink', 'less', 'fewer', 'downgrade', 'downgrading']],
  ['add', ['add', 'adding', 'insert', 'inserting', 'install', 'installing', 'include', 'including', 'append'], ['remove', 'removing', 'delete', 'deleting', 'drop', 'dropping', 'uninstall', 'uninstalling', 'exclude', 'excluding', 'erase']],
  ['max', ['max', 'maximum', 'largest', 'biggest', 'highest', 'longest', 'most', 'best', 'greatest', 'tallest', 'oldest', 'fastest'], ['min', 'minimum', 'smallest', 'least', 'lowest', 'shortest', 'worst', 'fewest', 'youngest', 'newest', 'slowest']],
  ['before', ['before', 'prior', 'earlier', 'previous', 'above', 'first', 'start', 'begin', 'beginning'], ['after', 'later', 'next', 'following', 'below', 'last', 'end', 'ends', 'ended', 'finish', 'ending']],
  ['allow', ['allow', 'allowed', 'permit', 'permitted', 'accept', 'grant', 'whitelist', 'allowlist'], ['deny', 'denied', 'forbid', 'forbidden', 'reject', 'block', 'blocked', 'revoke', 'blacklist', 'denylist']],
  ['true', ['true', 'yes', 'valid', 'correct', 'pros', 'advantages', 'benefits'], ['false', 'invalid', 'incorrect', 'wrong', 'cons', 'disadvantages', 'drawbacks', 'risks']],
  ['open', ['open', 'opening', 'start', 'starting', 'launch', 'connect', 'lock'], ['close', 'closing', 'stop', 'stopping', 'shutdown', 'disconnect', 'unlock', 'kill']],
  ['buy', ['buy', 'buying', 'purchase', 'import', 'importing', 'upload', 'uploading', 'encrypt', 'encode', 'encoding', 'compress', 'serialize', 'push', 'send', 'input'], ['sell', 'selling', 'export', 'exporting', 'download', 'downloading', 'decrypt', 'decode', 'decoding', 'decompress', 'deserialize', 'pull', 'receive', 'output']],
  ['asc', ['ascending', 'asc', 'increasing', 'north', 'east', 'inner', 'inside', 'internal', 'horizontal', 'positive', 'hot', 'warm', 'summer', 'morning'], ['descending', 'desc', 'decreasing', 'south', 'west', 'outer', 'outside', 'external', 'vertical', 'negative', 'cold', 'cool', 'winter', 'evening']],
  ['sync', ['sync', 'synchronous', 'synchronously', 'blocking', 'mutable', 'public', 'static', 'client', 'frontend', 'encrypt'], ['async', 'asynchronous', 'asynchronously', 'nonblocking', 'immutable', 'private', 'dynamic', 'server', 'backend']],
]
const POLARITY_WORD = new Map<string, string>()
const POLARITY_PHRASE: Array<[string, string]> = []
for (const [axis, plus, minus] of POLARITY) {
  for (const [words, sign] of [[plus, '+'], [minus, '-']] as const) {
    for (const w of words) {
      if (w.includes(' ')) POLARITY_PHRASE.push([w, `${axis}:${sign}`])
      else if (!POLARITY_WORD.has(w)) POLARITY_WORD.set(w, `${axis}:${sign}`)
    }
  }
}

/** Function words: neither entities at a sentence start nor content words for the substitution check. */
const STOP = new Set(('a an the this that these those it its is are was were be been being am do does did doing done have has had having ' +
  'i me my mine we us our you your he him his she her they them their what which who whom whose when where why how ' +
  'and or but if then than so as of at by for with about into onto to from in on out up down over under again further once ' +
  'can could would should will shall may might must please tell give show let make explain describe list write help ' +
  'some any all each every both few many much more most other such own same very just also too only really ' +
  'there here yes hi hello hey thanks thank ok okay kindly quick quickly briefly short simple simply exactly ' +
  'whats hows wheres whos difference between vs versus like using use used way ways best good better need want know ' +
  'someone something anyone anything everything one ones get getting got go going do doing say said mean means meaning').split(' '))

/** Words that may start a sentence without being names (question words, imperatives, pronouns…). */
const COMMON_START = new Set([...STOP, ...('summarize summarise translate convert compare define name find generate create draft suggest recommend ' +
  'provide calculate compute rewrite fix debug outline plan is are does do did can could would should will was were ' +
  'in on for after before during since while although because when if whats im ive id ill its lets dont doesnt isnt ' +
  'cant wont how why where who which what tell show give write list explain describe please could my our your their ' +
  'the a an this that these those there here yes no not okay ok so now also then first next finally again hey hi ' +
  'imagine assume suppose consider given using with without from to as at by about into over under between ' +
  'make take keep set put check add remove delete update change turn enable disable increase decrease sort ' +
  'read count print return build run install configure deploy ' +
  // Verbs people open a support question with ("Forgot my password", "Lost my card", "Need help…").
  'forgot forget lost lose need needed having trying tried got getting cannot unable stuck locked ' +
  'received missing wrong charged cancel cancelled canceled track activate freeze reset login log sign ' +
  'recommend suggest tips ideas best quick').split(' ')])

/**
 * Equivalent wordings mapped onto one (for alignment and presence checks only, never for the facts above):
 * support phrasings (log in = sign in, update = change), abbreviations (info, dict, int), irregular verb forms
 * and agent nouns (wrote = write = author, inventor = invent). Conservative on purpose: a pair here must mean
 * the same in every question, so no ocean = sea, no words = terms.
 */
const CANON_PHRASES: ReadonlyArray<readonly [string, string]> = [
  ['log in to', 'login'], ['log into', 'login'], ['sign in to', 'login'], ['sign into', 'login'], ['log in', 'login'], ['sign in', 'login'], ['logon', 'login'], ['signin', 'login'],
  ['log out of', 'logout'], ['sign out of', 'logout'], ['log out', 'logout'], ['sign out', 'logout'], ['signout', 'logout'],
  ['turn on', 'enable'], ['switch on', 'enable'], ['turn off', 'disable'], ['switch off', 'disable'],
  ['get in touch with', 'contact'], ['reach out to', 'contact'], ['set up', 'setup'],
  ['in simple words', 'in simple terms'], ['in plain words', 'in simple terms'], ['in plain english', 'in simple terms'],
  ['unable', 'can not'], ['not able', 'can not'],
  // The support intent, however it is put: "Forgot my password" asks how to reset it.
  ['forgot my password', 'reset my password'], ['forgot password', 'reset password'], ['forgotten password', 'reset password'], ['lost my password', 'reset my password'],
  ['forgot my pin', 'reset my pin'], ['forgot pin', 'reset pin'],
  ['placed my order', 'ordering'], ['placed an order', 'ordering'], ['placing an order', 'ordering'], ['place an order', 'order'],
  ['how tall', 'height'], ['how far', 'distance'], ['deal with', 'cope with'],
]
const CANON_WORDS: Record<string, string> = {
  update: 'change', updating: 'change', modify: 'change', edit: 'change', changing: 'change',
  info: 'information', dict: 'dictionary', int: 'integer', repo: 'repository', config: 'configuration', docs: 'documentation',
  tall: 'height', far: 'distance', create: 'setup', creating: 'setup',
  wrote: 'write', written: 'write', author: 'write', writer: 'write', spoke: 'speak', spoken: 'speak',
  forgot: 'forget', forgotten: 'forget', lost: 'lose', sent: 'send', paid: 'pay', bought: 'buy', made: 'make',
  took: 'take', taken: 'take', gave: 'give', given: 'give', ran: 'run', began: 'begin', begun: 'begin',
  chose: 'choose', chosen: 'choose', broke: 'break', broken: 'break', ate: 'eat', eaten: 'eat', drew: 'draw', drawn: 'draw',
  inventor: 'invent', invention: 'invent', creator: 'setup', founder: 'found', painter: 'paint', enter: 'apply', redeem: 'apply',
}

function canonical(tokens: readonly string[]): string[] {
  let joined = ' ' + tokens.join(' ') + ' '
  for (const [from, to] of CANON_PHRASES) joined = joined.split(` ${from} `).join(` ${to} `)
  return joined.trim().split(' ').filter(Boolean).map((t) => CANON_WORDS[t] ?? t)
}

const WORD_RE = /[\p{L}\p{N}](?:[\p{L}\p{N}'’_\-./]|,(?=\d{3}))*[\p{L}\p{N}_]|[\p{L}\p{N}]/gu

/** Extracts the guard's facts from a prompt text. */
export function promptFacts(text: string): PromptFacts {
  const quoted: string[] = []
  const stripped = text.replace(/"([^"\n]{1,200})"|“([^”\n]{1,200})”|`([^`\n]{1,200})`|(?<![\p{L}\p{N}])'([^'\n]{1,200})'(?![\p{L}\p{N}])/gu, (_m, a, b, c, d) => {
    quoted.push(((a ?? b ?? c ?? d) as string).trim())
    return ' '
  })
  const numbers: string[] = []
  const literals: string[] = []
  const entities: string[] = []
  const initials: string[] = []
  const tokens: string[] = []
  let negations = 0
  const polarity: string[] = []
  let sentenceStart = true
  // Walk the text keeping track of sentence boundaries, so capitalisation can be read as a name signal.
  const re = new RegExp(WORD_RE.source + '|[.!?:;\\n]', 'gu')
  for (const m of stripped.matchAll(re)) {
    const raw = m[0]
    if (/^[.!?:;\n]$/.test(raw)) { sentenceStart = true; continue }
    const word = raw.replace(/’/g, "'")
    const lower = word.toLowerCase()
    const atStart = sentenceStart
    sentenceStart = false
    if (/\d/.test(word)) {
      const n = normaliseNumber(word)
      if (n !== null) numbers.push(n)
      else literals.push(word)
      tokens.push(n ?? lower)
      continue
    }
    const roman = ROMAN[word]
    if (roman !== undefined) {
      numbers.push(String(roman))
      tokens.push(String(roman))
      continue
    }
    if (/[_/]|\.\p{L}|\p{Ll}\p{Lu}/u.test(word)) {
      literals.push(word)
      tokens.push(lower)
      continue
    }
    for (const part of expandContraction(lower)) {
      if (NEGATIONS.has(part)) negations++
      const pol = POLARITY_WORD.get(part)
      if (pol) polarity.push(pol)
      const nw = NUMBER_WORDS[part]
      if (nw !== undefined) numbers.push(String(nw))
      // Number words align with their digits ("three tips" = "3 tips").
      tokens.push(nw !== undefined ? String(nw) : part)
    }
    if (/^\p{Lu}/u.test(word) && !STOP.has(lower) && NUMBER_WORDS[lower] === undefined) {
      // Mid-sentence capitals are names; at a sentence start only a swap of them counts (see guardCheck).
      if (!atStart) entities.push(lower.replace(/'s$/, ''))
      else if (!COMMON_START.has(lower.replace(/'/g, ''))) initials.push(lower.replace(/'s$/, ''))
    }
  }
  const joined = ' ' + tokens.join(' ') + ' '
  for (const [phrase, pol] of POLARITY_PHRASE) if (joined.includes(` ${phrase} `)) polarity.push(pol)
  return {
    numbers: numbers.sort(),
    quoted: quoted.sort(),
    literals: literals.sort(),
    entities: [...new Set(entities)].sort(),
    initials: [...new Set(initials)].sort(),
    tokens,
    canon: canonical(tokens),
    negations,
    polarity: [...new Set(polarity)].sort(),
  }
}

function normaliseNumber(word: string): string | null {
  const cleaned = word.replace(/,(?=\d{3}\b)/g, '').replace(/(st|nd|rd|th|s|k|m|%)$/i, (s) => (s.toLowerCase() === 'k' ? 'e3' : s.toLowerCase() === 'm' ? 'e6' : ''))
  const n = Number(cleaned)
  return Number.isFinite(n) ? String(n) : null
}

function expandContraction(w: string): string[] {
  const base = w.replace(/'s$/, '')
  if (/n't$/.test(base)) {
    const stem = base.slice(0, -3)
    return [stem === 'wo' ? 'will' : stem === 'ca' ? 'can' : stem === 'sha' ? 'shall' : stem, 'not']
  }
  const m = /^(.*)'(re|ve|ll|d|m)$/.exec(base)
  if (m) return [m[1]!]
  // "dont", "cant", "isnt" typed without the apostrophe.
  if (/^(don|doesn|didn|isn|aren|wasn|weren|won|can|couldn|shouldn|wouldn|haven|hasn|hadn)t$/.test(base) && base !== 'cant') return [base.slice(0, -2), 'not']
  if (base === 'cant') return ['can', 'not']
  return [base]
}

/** Crude stem: enough to equate "tables"/"table", "causes"/"cause", "painted"/"painter", "summary"/"summarize". */
function stem(w: string): string {
  if (w.length <= 3) return w
  let s = w.replace(/([^s])s$/, '$1')
  s = s.replace(/(ations?|ation|izing|ising|ize|ise|ings?|edly|ed|er|ly|y)$/, '')
  s = s.replace(/e$/, '')
  return s.length >= 3 ? s : w
}

/** Whether two prompts agree on everything the guard checks. */
export function guardCheck(a: PromptFacts, b: PromptFacts): GuardVerdict {
  if (!sameList(a.numbers, b.numbers)) return { ok: false, reason: 'number', detail: diff(a.numbers, b.numbers) }
  if (!sameList(a.quoted, b.quoted)) return { ok: false, reason: 'quoted', detail: diff(a.quoted, b.quoted) }
  if (!sameList(a.literals, b.literals)) return { ok: false, reason: 'literal', detail: diff(a.literals, b.literals) }
  // An entity of one prompt must be present in the other, capitalised or not ("python" = "Python").
  const tokA = new Set([...a.tokens, ...a.canon].map(stripPossessive))
  const tokB = new Set([...b.tokens, ...b.canon].map(stripPossessive))
  for (const e of a.entities) if (!tokB.has(e)) return { ok: false, reason: 'entity', detail: e }
  for (const e of b.entities) if (!tokA.has(e)) return { ok: false, reason: 'entity', detail: e }
  // "Tokyo is in which country?" / "Osaka is in which country?": both open with a word the other lacks.
  const initialA = a.initials.filter((e) => !tokB.has(e))
  const initialB = b.initials.filter((e) => !tokA.has(e))
  if (initialA.length && initialB.length) return { ok: false, reason: 'entity', detail: `${initialA.join(' ')} → ${initialB.join(' ')}` }
  if (a.negations !== b.negations) return { ok: false, reason: 'negation', detail: `${a.negations} vs ${b.negations}` }
  if (!sameList(a.polarity, b.polarity)) return { ok: false, reason: 'polarity', detail: diff(a.polarity, b.polarity) }
  const sub = substitution(a.canon, b.canon)
  if (sub) return { ok: false, reason: 'substitution', detail: sub }
  return { ok: true }
}

function stripPossessive(t: string): string {
  return t.replace(/'s$/, '')
}

/**
 * Aligns the two token lists (LCS on stems) and looks at each differing stretch: when both sides put 1–2
 * content words that the other prompt does not contain anywhere into the same place, one fact was swapped
 * for another. Rephrasing (different length, reordering, added filler) does not look like that.
 */
function substitution(a: readonly string[], b: readonly string[]): string | null {
  // Function words carry no fact: drop them before aligning so "is"/"was" never look like a substitution.
  const sa = a.filter((w) => !STOP.has(w)).map(stem)
  const sb = b.filter((w) => !STOP.has(w)).map(stem)
  const inA = new Set(sa)
  const inB = new Set(sb)
  const n = sa.length
  const m = sb.length
  if (n * m > 250_000) return null // very long prompts: the other checks still apply
  const dp: Uint16Array[] = Array.from({ length: n + 1 }, () => new Uint16Array(m + 1))
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) dp[i]![j] = sa[i] === sb[j] ? dp[i + 1]![j + 1]! + 1 : Math.max(dp[i + 1]![j]!, dp[i]![j + 1]!)
  let i = 0
  let j = 0
  let hunkA: string[] = []
  let hunkB: string[] = []
  const flush = (): string | null => {
    const ua = hunkA.filter((w) => !inB.has(w))
    const ub = hunkB.filter((w) => !inA.has(w))
    hunkA = []
    hunkB = []
    if (ua.length >= 1 && ub.length >= 1 && ua.length <= 2 && ub.length <= 2 && Math.abs(ua.length - ub.length) <= 1) return `${ua.join(' ')} → ${ub.join(' ')}`
    return null
  }
  while (i < n || j < m) {
    if (i < n && j < m && sa[i] === sb[j]) {
      const r = flush()
      if (r) return r
      i++
      j++
    } else if (j >= m || (i < n && dp[i + 1]![j]! >= dp[i]![j + 1]!)) hunkA.push(sa[i++]!)
    else hunkB.push(sb[j++]!)
  }
  return flush()
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

function diff(a: readonly string[], b: readonly string[]): string {
  return `[${a.join(', ')}] vs [${b.join(', ')}]`
}
