import { z } from 'zod'
import { detectPii, looksLikeInjection, PII_KINDS, type Span } from '../detectors.ts'
import { enableBacktrackFallback, unsafeReason } from '../regex-guard.ts'
import type { Finding, TextRole } from '../types.ts'

const safePattern = z.string().min(1).max(1000).superRefine((p, ctx) => {
  const why = unsafeReason(p)
  if (why) ctx.addIssue({ code: 'custom', message: `pattern ${JSON.stringify(p.slice(0, 60))}: ${why}` })
})

export const builtinEngineSchema = z.strictObject({
  type: z.literal('builtin'),
  /** Words and phrases (confidential code names…), matched case-insensitively on word boundaries. */
  blocklist: z.array(z.string().min(1).max(200)).max(1000).default([]),
  /** Regular expressions (JavaScript syntax, case-sensitive); refused at load when they could backtrack catastrophically. */
  patterns: z.array(z.union([safePattern, z.strictObject({ pattern: safePattern, ignoreCase: z.boolean().default(false), category: z.string().regex(/^[a-z_]{1,40}$/).default('custom_blocklists') })])).max(200).default([]),
  pii: z.strictObject({
    action: z.enum(['block', 'redact']).default('redact'),
    kinds: z.array(z.enum(PII_KINDS)).min(1).default([...PII_KINDS]),
  }).optional(),
  /** Prompt-injection heuristics: instruction overrides, persona jailbreaks, system-prompt extraction. */
  shieldPrompt: z.boolean().default(false),
})
export type BuiltinEngineConfig = z.infer<typeof builtinEngineSchema>

export interface ScanResult {
  readonly findings: Finding[]
  /** PII spans to replace (pii.action: redact). */
  readonly redact: Span[]
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** The offline engine: blocklists, patterns, PII and secrets, injection heuristics. Synchronous, linear-time. */
export class BuiltinEngine {
  readonly name = 'builtin'
  private readonly words: RegExp | null
  private readonly patterns: ReadonlyArray<{ re: RegExp; category: string; index: number }>
  private readonly piiKinds: ReadonlySet<string>
  private readonly piiAction: 'block' | 'redact' | null
  private readonly shield: boolean

  constructor(cfg: BuiltinEngineConfig) {
    // One alternation of escaped literals, bounded by non-word characters: one linear pass for the whole list.
    this.words = cfg.blocklist.length
      ? new RegExp(`(?<![\\p{L}\\p{N}_])(?:${[...cfg.blocklist].sort((a, b) => b.length - a.length).map((w) => escape(w).replace(/\s+/g, '\\s+')).join('|')})(?![\\p{L}\\p{N}_])`, 'iu')
      : null
    if (cfg.patterns.length) enableBacktrackFallback()
    this.patterns = cfg.patterns.map((p, index) => typeof p === 'string'
      ? { re: new RegExp(p), category: 'custom_blocklists', index }
      : { re: new RegExp(p.pattern, p.ignoreCase ? 'i' : ''), category: p.category, index })
    this.piiKinds = new Set(cfg.pii?.kinds ?? [])
    this.piiAction = cfg.pii?.action ?? null
    this.shield = cfg.shieldPrompt
  }

  get redacts(): boolean {
    return this.piiAction === 'redact'
  }

  scan(text: string, role: TextRole): ScanResult {
    const findings: Finding[] = []
    if (this.words?.test(text)) findings.push({ engine: this.name, category: 'custom_blocklists', detail: 'builtin', blocked: true })
    for (const p of this.patterns) if (p.re.test(text)) findings.push({ engine: this.name, category: p.category, detail: `pattern:${p.index}`, blocked: true })
    if (this.shield && looksLikeInjection(text)) {
      findings.push({ engine: this.name, category: role === 'user' || role === 'completion' ? 'jailbreak' : 'indirect_attack', blocked: true })
    }
    let redact: Span[] = []
    if (this.piiAction !== null) {
      const spans = detectPii(text, this.piiKinds)
      if (this.piiAction === 'block') {
        for (const kind of new Set(spans.map((s) => s.kind))) findings.push({ engine: this.name, category: 'pii', detail: kind, blocked: true })
      } else {
        redact = spans
      }
    }
    return { findings, redact }
  }
}
