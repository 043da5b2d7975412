/**
 * Redaction applied to logged prompts and completions before anything is stored. Built-in patterns cover
 * the secrets and PII most often pasted into prompts; configured patterns add to them.
 */
export interface Redactor {
  (text: string): string
}

interface Rule { readonly re: RegExp; readonly replace: (match: string) => string }

const fixed = (label: string) => () => `[REDACTED:${label}]`

/** Luhn checksum, so long order numbers and timestamps are not mistaken for card numbers. */
function luhnValid(digits: string): boolean {
  let sum = 0
  let double = false
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48
    if (double) { d *= 2; if (d > 9) d -= 9 }
    sum += d
    double = !double
  }
  return sum % 10 === 0
}

const BUILTIN: readonly Rule[] = [
  // Authorization values first, so the key inside is not half-matched by a later rule.
  { re: /\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}/gi, replace: (m) => `${m.slice(0, 6)} [REDACTED:bearer]` },
  // Provider and platform keys: OpenAI/Anthropic/Stripe-style sk-/pk-/rk-, AWS access keys, GitHub, Google, Slack.
  { re: /\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}/g, replace: fixed('api-key') },
  { re: /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g, replace: fixed('api-key') },
  { re: /\bgh[pousr]_[A-Za-z0-9]{30,}\b/g, replace: fixed('api-key') },
  { re: /\bgithub_pat_[A-Za-z0-9_]{30,}\b/g, replace: fixed('api-key') },
  { re: /\bAIza[0-9A-Za-z_-]{35}\b/g, replace: fixed('api-key') },
  { re: /\bxox[abposr]-[A-Za-z0-9-]{10,}/g, replace: fixed('api-key') },
  // `api_key=…`, `"apiKey": "…"`, `password: …` and the like: keep the name, drop the value.
  {
    re: /\b(api[_-]?key|secret|password|passwd|access[_-]?token)(["']?\s*[:=]\s*["']?)([^\s"',;]{6,})/gi,
    replace: (m) => m.replace(/([:=]\s*["']?)[^\s"',;]{6,}$/, '$1[REDACTED:secret]'),
  },
  { re: /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g, replace: fixed('email') },
  {
    re: /\b\d(?:[ -]?\d){12,18}\b/g,
    replace: (m) => (luhnValid(m.replace(/[ -]/g, '')) ? '[REDACTED:card]' : m),
  },
]

/** Builds the redactor: built-in rules (unless turned off) then the configured regular expressions. */
export function makeRedactor(patterns: readonly string[], builtin = true): Redactor {
  const rules: Rule[] = builtin ? [...BUILTIN] : []
  for (const p of patterns) rules.push({ re: new RegExp(p, 'g'), replace: fixed('custom') })
  return (text) => {
    let out = text
    for (const r of rules) {
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
