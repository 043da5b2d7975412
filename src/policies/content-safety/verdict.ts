import { GatewayError, GW_ERR } from '../../core/errors.ts'
import type { Finding } from './types.ts'

const HARM = ['hate', 'sexual', 'self_harm', 'violence'] as const

/** Azure's severity names for the 0-7 scale. */
export function severityName(severity: number): 'safe' | 'low' | 'medium' | 'high' {
  return severity >= 6 ? 'high' : severity >= 4 ? 'medium' : severity >= 2 ? 'low' : 'safe'
}

/**
 * Azure OpenAI's `content_filter_result`: the four harm categories always (filtered, severity), then
 * `jailbreak` / `indirect_attack` ({ filtered, detected }), `custom_blocklists` ({ filtered, details }),
 * and, beyond Azure's names, `pii` and OpenAI moderation's other categories in the same shape.
 */
export function contentFilterResult(findings: readonly Finding[]): Record<string, unknown> {
  const out: Record<string, any> = {}
  for (const c of HARM) out[c] = { filtered: false, severity: 'safe' }
  for (const f of findings) {
    const cur = out[f.category]
    if ((HARM as readonly string[]).includes(f.category)) {
      const sev = f.severity ?? (f.blocked ? 6 : 0)
      if (severityRank(severityName(sev)) > severityRank(cur.severity)) cur.severity = severityName(sev)
      if (f.blocked) cur.filtered = true
    } else if (f.category === 'jailbreak' || f.category === 'indirect_attack') {
      out[f.category] = { filtered: (cur?.filtered ?? false) || f.blocked, detected: (cur?.detected ?? false) || f.blocked }
    } else if (f.category === 'custom_blocklists') {
      const entry = cur ?? (out[f.category] = { filtered: false, details: [] })
      entry.filtered ||= f.blocked
      if (f.detail !== undefined && !entry.details.some((d: { id: string }) => d.id === f.detail)) entry.details.push({ filtered: f.blocked, id: f.detail })
    } else {
      const entry = cur ?? (out[f.category] = { filtered: false, detected: true, details: [] })
      entry.filtered ||= f.blocked
      if (f.detail !== undefined && !entry.details.includes(f.detail)) entry.details.push(f.detail)
    }
  }
  return out
}

function severityRank(s: string): number {
  return s === 'high' ? 3 : s === 'medium' ? 2 : s === 'low' ? 1 : 0
}

export function blockedCategories(findings: readonly Finding[]): string[] {
  return [...new Set(findings.filter((f) => f.blocked).map((f) => f.category))]
}

/** 400 `content_filter` in Azure OpenAI's shape, with `innererror.content_filter_result`. */
export function contentFilterError(findings: readonly Finding[], where: 'prompt' | 'completion'): GatewayError {
  const categories = blockedCategories(findings).join(', ')
  const message = where === 'prompt'
    ? `The prompt was filtered by the gateway's content-safety policy (${categories}). Please modify your prompt and retry.`
    : `The completion was filtered by the gateway's content-safety policy (${categories}).`
  return new GatewayError(GW_ERR.CONTENT_FILTER, message, {
    param: where === 'prompt' ? 'prompt' : null,
    details: { innererror: { code: 'ResponsibleAIPolicyViolation', content_filter_result: contentFilterResult(findings) } },
  })
}
