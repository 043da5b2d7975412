/**
 * Mock Azure AI Content Safety (`/contentsafety/text:analyze`, `/contentsafety/text:shieldPrompt`) and
 * OpenAI moderation (`/v1/moderations`), driven by marker words so tests and the demo can trigger every
 * verdict without a real service:
 *
 *   mock-hate, mock-sexual, mock-selfharm, mock-violence   the category at severity 6 (FourSeverityLevels:
 *                                                           0/2/4/6); `mock-violence:3` sets severity 3
 *   mock-blocked-term                                      a hit in every blocklist the request names
 *   mock-jailbreak                                         shieldPrompt: attack in the user prompt
 *   mock-document-attack                                   shieldPrompt: attack in a document
 *   mock-harassment, mock-illicit                           moderation only
 *
 * Both APIs require credentials like the real ones (Ocp-Apim-Subscription-Key or a bearer token for
 * Content Safety, a bearer key for moderation) and answer 401 without.
 */
import type http from 'node:http'

type Json = Record<string, unknown>

const AZURE_MARKERS: Record<string, string> = { 'mock-hate': 'Hate', 'mock-sexual': 'Sexual', 'mock-selfharm': 'SelfHarm', 'mock-violence': 'Violence' }
const MODERATION_MARKERS: Record<string, string[]> = {
  'mock-hate': ['hate'], 'mock-sexual': ['sexual'], 'mock-selfharm': ['self-harm', 'self-harm/intent'], 'mock-violence': ['violence'],
  'mock-harassment': ['harassment'], 'mock-illicit': ['illicit'],
}
const MODERATION_CATEGORIES = ['harassment', 'harassment/threatening', 'hate', 'hate/threatening', 'illicit', 'illicit/violent', 'self-harm', 'self-harm/intent', 'self-harm/instructions', 'sexual', 'sexual/minors', 'violence', 'violence/graphic']

/** Which paths this module answers. */
export function isSafetyPath(path: string): boolean {
  return path.startsWith('/contentsafety/') || path === '/v1/moderations' || path === '/openai/v1/moderations'
}

/** Severity per Azure category found in `text` (marker `mock-violence:3` gives 3, plain marker 6). */
function severities(text: string): Map<string, number> {
  const found = new Map<string, number>()
  const lower = text.toLowerCase()
  for (const [marker, category] of Object.entries(AZURE_MARKERS)) {
    let i = lower.indexOf(marker)
    while (i !== -1) {
      const m = /^:(\d)/.exec(lower.slice(i + marker.length, i + marker.length + 2))
      const sev = m ? Number(m[1]) : 6
      found.set(category, Math.max(found.get(category) ?? 0, sev))
      i = lower.indexOf(marker, i + marker.length)
    }
  }
  return found
}

function fourLevels(sev: number): number {
  return sev >= 6 ? 6 : sev >= 4 ? 4 : sev >= 2 ? 2 : 0
}

export function handleSafety(path: string, req: http.IncomingMessage, body: Json, send: (status: number, body: unknown) => void): void {
  const hasKey = typeof req.headers['ocp-apim-subscription-key'] === 'string' || typeof req.headers.authorization === 'string'
  if (!hasKey) return send(401, { error: { code: 'Unauthorized', message: 'Access denied due to missing subscription key (mock).' } })
  if (path === '/contentsafety/text:analyze') {
    if (typeof body.text !== 'string') return send(400, { error: { code: 'InvalidRequestBody', message: 'text is required (mock).' } })
    if (body.text.length > 10_000) return send(400, { error: { code: 'InvalidRequestBody', message: 'text is longer than 10,000 characters (mock).' } })
    const eight = body.outputType === 'EightSeverityLevels'
    const wanted = Array.isArray(body.categories) ? (body.categories as string[]) : Object.values(AZURE_MARKERS)
    const found = severities(body.text)
    const lists = Array.isArray(body.blocklistNames) ? (body.blocklistNames as string[]) : []
    return send(200, {
      blocklistsMatch: body.text.toLowerCase().includes('mock-blocked-term') ? lists.map((name, i) => ({ blocklistName: name, blocklistItemId: `item-${i}`, blocklistItemText: 'mock-blocked-term' })) : [],
      categoriesAnalysis: wanted.map((category) => ({ category, severity: eight ? (found.get(category) ?? 0) : fourLevels(found.get(category) ?? 0) })),
    })
  }
  if (path === '/contentsafety/text:shieldPrompt') {
    const user = typeof body.userPrompt === 'string' ? body.userPrompt : ''
    const docs = Array.isArray(body.documents) ? (body.documents as unknown[]).filter((d): d is string => typeof d === 'string') : []
    return send(200, {
      userPromptAnalysis: { attackDetected: user.toLowerCase().includes('mock-jailbreak') },
      documentsAnalysis: docs.map((d) => ({ attackDetected: d.toLowerCase().includes('mock-document-attack') })),
    })
  }
  if (path.endsWith('/moderations')) {
    // A string, an array of strings, or omni-moderation's multimodal items ({type: text, text} / {type: image_url}).
    const inputs = typeof body.input === 'string' ? [body.input] : Array.isArray(body.input) ? (body.input as unknown[]).map((x) => (typeof x === 'string' ? x : typeof (x as Json)?.text === 'string' ? String((x as Json).text) : '')) : null
    if (inputs === null) return send(400, { error: { message: "'input' is a required property (mock)", type: 'invalid_request_error', param: 'input', code: null } })
    return send(200, {
      id: `modr-mock-${Date.now().toString(36)}`,
      model: typeof body.model === 'string' ? body.model : 'omni-moderation-latest',
      results: inputs.map((text) => {
        const lower = text.toLowerCase()
        const hit = new Set<string>()
        for (const [marker, cats] of Object.entries(MODERATION_MARKERS)) if (lower.includes(marker)) cats.forEach((c) => hit.add(c))
        return {
          flagged: hit.size > 0,
          categories: Object.fromEntries(MODERATION_CATEGORIES.map((c) => [c, hit.has(c)])),
          category_scores: Object.fromEntries(MODERATION_CATEGORIES.map((c) => [c, hit.has(c) ? 0.97 : 0.0001])),
          // As omni-moderation reports it: which input types each category was judged on (text only here).
          category_applied_input_types: Object.fromEntries(MODERATION_CATEGORIES.map((c) => [c, ['text']])),
        }
      }),
    })
  }
  send(404, { error: { code: 'NotFound', message: `Unknown operation ${path} (mock).` } })
}
