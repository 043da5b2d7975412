/**
 * PII and secret detectors for the builtin engine. Every pattern is written to run in linear time on
 * any input: bounded repeats before a required literal, no nested quantifiers, so a client cannot make
 * a scan backtrack. A match is confirmed by a checksum where one exists (Luhn for cards, mod-97 for
 * IBANs) so digit runs that merely look like cards are not flagged.
 */
import { luhnValid } from '../../core/checksums.ts'

export const PII_KINDS = ['email', 'phone', 'card', 'iban', 'nationalId', 'apiKey'] as const
export type PiiKind = (typeof PII_KINDS)[number]

export interface Span { readonly start: number; readonly end: number; readonly kind: string }

interface Detector {
  readonly kind: PiiKind
  readonly pattern: RegExp
  readonly confirm?: (match: string) => boolean
}

const digitsOf = (s: string) => s.replace(/[^0-9]/g, '')

export { luhnValid } from '../../core/checksums.ts'

/** ISO 13616: move the first four characters to the end, letters to numbers, the remainder mod 97 is 1. */
export function ibanValid(raw: string): boolean {
  const s = raw.replace(/ /g, '').toUpperCase()
  if (s.length < 15 || s.length > 34) return false
  const moved = s.slice(4) + s.slice(0, 4)
  let rem = 0
  for (const ch of moved) {
    const code = ch.charCodeAt(0)
    const v = code >= 65 ? String(code - 55) : ch
    for (const d of v) rem = (rem * 10 + (d.charCodeAt(0) - 48)) % 97
  }
  return rem === 1
}

function ssnValid(m: string): boolean {
  const [a, b, c] = m.split('-') as [string, string, string]
  return a !== '000' && a !== '666' && a[0] !== '9' && b !== '00' && c !== '0000'
}

const DETECTORS: readonly Detector[] = [
  { kind: 'email', pattern: /(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,8}/g },
  // International (+CC …) or North American ((555) 123-4567, 555-123-4567) numbers; 8 to 15 digits.
  { kind: 'phone', pattern: /\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}|(?<!\d)\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}(?!\d)/g, confirm: (m) => { const n = digitsOf(m).length; return n >= 8 && n <= 15 } },
  { kind: 'card', pattern: /(?<!\d)\d(?:[ -]?\d){12,18}(?!\d)/g, confirm: (m) => luhnValid(digitsOf(m)) },
  { kind: 'iban', pattern: /\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b/g, confirm: ibanValid },
  // US SSN, UK National Insurance number, French NIR (sécurité sociale).
  { kind: 'nationalId', pattern: /(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)/g, confirm: ssnValid },
  { kind: 'nationalId', pattern: /\b[A-CEGHJ-PR-TW-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b/g },
  { kind: 'nationalId', pattern: /(?<!\d)[12] ?\d{2} ?(?:0[1-9]|1[0-2]) ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}(?!\d)/g },
  // Provider keys and credentials: OpenAI, Anthropic, AWS, GitHub, Slack, Google, Stripe, PEM private keys, JWTs.
  { kind: 'apiKey', pattern: /\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,200}/g },
  { kind: 'apiKey', pattern: /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g },
  { kind: 'apiKey', pattern: /\bgh[pousr]_[A-Za-z0-9]{36,255}\b/g },
  { kind: 'apiKey', pattern: /\bxox[abprs]-[A-Za-z0-9-]{10,200}/g },
  { kind: 'apiKey', pattern: /\bAIza[0-9A-Za-z_-]{35}\b/g },
  { kind: 'apiKey', pattern: /\b[sr]k_live_[0-9A-Za-z]{24,200}\b/g },
  { kind: 'apiKey', pattern: /-----BEGIN (?:[A-Z]{1,10} ){0,3}PRIVATE KEY-----/g },
  { kind: 'apiKey', pattern: /\beyJ[A-Za-z0-9_-]{10,4000}\.[A-Za-z0-9_-]{10,4000}\.[A-Za-z0-9_-]{10,4000}/g },
]

/** Every confirmed detection of the given kinds in `text`, as spans (possibly overlapping). */
export function detectPii(text: string, kinds: ReadonlySet<string>): Span[] {
  const spans: Span[] = []
  for (const d of DETECTORS) {
    if (!kinds.has(d.kind)) continue
    d.pattern.lastIndex = 0
    for (let m = d.pattern.exec(text); m !== null; m = d.pattern.exec(text)) {
      if (!d.confirm || d.confirm(m[0])) spans.push({ start: m.index, end: m.index + m[0].length, kind: d.kind })
    }
  }
  return spans
}

/** Prompt-injection phrasings (the builtin engine's `shieldPrompt`): instruction overrides, persona jailbreaks, prompt extraction. */
const INJECTION: readonly RegExp[] = [
  /\b(?:ignore|disregard|forget|override|bypass)\s{1,5}(?:all\s{1,5}|any\s{1,5}|the\s{1,5}|your\s{1,5}|my\s{1,5}|of\s{1,5}|these\s{1,5}){0,3}(?:previous|prior|above|earlier|preceding|original|system|safety)\s{1,5}(?:instructions?|prompts?|rules|directions|guidelines|messages)\b/i,
  /\byou\s{1,5}are\s{1,5}(?:now\s{1,5})?(?:DAN|in\s{1,5}developer\s{1,5}mode|jailbroken|unrestricted|unfiltered)\b/i,
  /\bdo\s{1,5}anything\s{1,5}now\b/i,
  /\b(?:reveal|show|print|repeat|output|leak)\s{1,5}(?:me\s{1,5})?(?:your|the)\s{1,5}(?:system\s{1,5}prompt|hidden\s{1,5}instructions|initial\s{1,5}instructions|developer\s{1,5}message)\b/i,
  /\bpretend\s{1,5}(?:that\s{1,5})?you\s{1,5}(?:have\s{1,5}no|are\s{1,5}not\s{1,5}bound\s{1,5}by|do\s{1,5}not\s{1,5}have)\s{1,5}(?:restrictions|rules|guidelines|filters|limits)\b/i,
  /\bact\s{1,5}as\s{1,5}(?:an?\s{1,5})?(?:unfiltered|uncensored|unrestricted)\b/i,
  /\benable\s{1,5}(?:developer|god|jailbreak)\s{1,5}mode\b/i,
]

export function looksLikeInjection(text: string): boolean {
  for (const p of INJECTION) if (p.test(text)) return true
  return false
}

/** Replaces spans (merged where they overlap) with `[REDACTED_KIND]`. */
export function redactSpans(text: string, spans: readonly Span[]): string {
  if (spans.length === 0) return text
  const sorted = [...spans].sort((a, b) => a.start - b.start || b.end - a.end)
  let out = ''
  let pos = 0
  for (const s of sorted) {
    if (s.end <= pos) continue
    const start = Math.max(s.start, pos)
    out += text.slice(pos, start) + `[REDACTED_${s.kind.toUpperCase()}]`
    pos = s.end
  }
  return out + text.slice(pos)
}
