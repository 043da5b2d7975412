/**
 * Redaction applied to logged prompts and completions before anything is stored. Built-in patterns cover
 * the secrets and PII most often pasted into prompts; configured patterns add to them.
 */
import { luhnValid } from '../../core/checksums.ts'

export interface Redactor {
  (text: string): string
}

interface RegexRule { readonly re: RegExp; readonly replace: (match: string) => string }
/** A rule with its own scanner, where no regular expression is linear on adversarial text. */
interface ScanRule { readonly apply: (text: string) => string }
type Rule = RegexRule | ScanRule

const fixed = (label: string) => () => `[REDACTED:${label}]`

/**
 * Every quantifier is bounded (a real key is far shorter than its bound) and every pattern starts with a
 * literal or a bounded run, so each is linear in the text: an unbounded `+` over a 10 MiB run would overflow
 * the regex engine's backtracking stack, and the e-mail shape needs its own scanner (see redactEmails).
 */
const BUILTIN: readonly Rule[] = [
  // Authorization values first, so the key inside is not half-matched by a later rule.
  { re: /\b(bearer)\s{1,16}[A-Za-z0-9._~+/=-]{8,2048}/gi, replace: (m) => `${m.slice(0, 6)} [REDACTED:bearer]` },
  // Provider and platform keys: OpenAI/Anthropic/Stripe-style sk-/pk-/rk-, AWS access keys, GitHub, Google, Slack.
  { re: /\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,512}/g, replace: fixed('api-key') },
  { re: /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g, replace: fixed('api-key') },
  { re: /\bgh[pousr]_[A-Za-z0-9]{30,255}\b/g, replace: fixed('api-key') },
  { re: /\bgithub_pat_[A-Za-z0-9_]{30,255}\b/g, replace: fixed('api-key') },
  { re: /\bAIza[0-9A-Za-z_-]{35}\b/g, replace: fixed('api-key') },
  { re: /\bxox[abposr]-[A-Za-z0-9-]{10,255}/g, replace: fixed('api-key') },
  // `api_key=…`, `"apiKey": "…"`, `password: …` and the like: keep the name, drop the value.
  {
    re: /\b(api[_-]?key|secret|password|passwd|access[_-]?token)(["']?\s{0,16}[:=]\s{0,16}["']?)([^\s"',;]{6,512})/gi,
    replace: (m) => m.replace(/([:=]\s{0,16}["']?)[^\s"',;]{6,512}$/, '$1[REDACTED:secret]'),
  },
  // E-mail addresses: scanned from each "@" (the regex form backtracks quadratically on `a.a.a.…`).
  { apply: redactEmails },
  {
    re: /\b\d(?:[ -]?\d){12,18}\b/g,
    replace: (m) => (luhnValid(m.replace(/[ -]/g, '')) ? '[REDACTED:card]' : m),
  },
]

const LOCAL_MAX = 64 // RFC 5321 limits: local part 64, domain 255
const DOMAIN_MAX = 255
const isLocalChar = (c: number) => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 46 || c === 95 || c === 37 || c === 43 || c === 45
const isDomainChar = (c: number) => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 46 || c === 45
const isLetter = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122)

/**
 * Replaces `local@domain.tld` (local ≤ 64 chars of [A-Za-z0-9._%+-], domain ≤ 255 of [A-Za-z0-9.-] ending in
 * "." and two or more letters) by `[REDACTED:email]`. Each "@" looks at most LOCAL_MAX characters back and
 * DOMAIN_MAX forward, and a domain never contains "@", so the whole scan is linear in the text.
 */
export function redactEmails(text: string): string {
  let at = text.indexOf('@')
  if (at < 0) return text
  let out = ''
  let copied = 0 // text before this index is already in `out`
  while (at >= 0) {
    let start = at
    while (start > copied && at - start < LOCAL_MAX && isLocalChar(text.charCodeAt(start - 1))) start--
    let runEnd = at + 1
    while (runEnd < text.length && runEnd - at <= DOMAIN_MAX && isDomainChar(text.charCodeAt(runEnd))) runEnd++
    // The domain ends at the last "." that has a non-empty name before it and two or more letters after it.
    let end = -1
    for (let dot = runEnd - 1; dot > at + 1 && end < 0; dot--) {
      if (text.charCodeAt(dot) !== 46 || !isLetter(text.charCodeAt(dot + 1)) || !isLetter(text.charCodeAt(dot + 2))) continue
      let e = dot + 1
      while (e < text.length && isLetter(text.charCodeAt(e))) e++
      end = e
    }
    if (start < at && end > 0) {
      out += text.slice(copied, start) + '[REDACTED:email]'
      copied = end
      at = text.indexOf('@', end)
    } else {
      at = text.indexOf('@', at + 1)
    }
  }
  return copied === 0 ? text : out + text.slice(copied)
}

/** Builds the redactor: built-in rules (unless turned off) then the configured regular expressions. */
export function makeRedactor(patterns: readonly string[], builtin = true): Redactor {
  const rules: Rule[] = builtin ? [...BUILTIN] : []
  for (const p of patterns) rules.push({ re: new RegExp(p, 'g'), replace: fixed('custom') })
  return (text) => {
    let out = text
    for (const r of rules) {
      if ('apply' in r) { out = r.apply(out); continue }
      r.re.lastIndex = 0
      out = out.replace(r.re, r.replace)
    }
    return out
  }
}

/** Validates a configured pattern at load time; returns the problem or null. */
export function patternProblem(p: string): string | null {
  try {
    new RegExp(p, 'g')
    return null
  } catch (err) {
    return `invalid regular expression: ${(err as Error).message}`
  }
}
