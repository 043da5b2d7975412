import { z } from 'zod'
import type { EndpointResolver, Finding, RemoteEngine, ServiceEndpoint, WindowedText } from '../types.ts'
import { mapLimited, ONE_TARGET_MESSAGE, oneTarget, postJson, remoteTarget, resolveTarget } from './remote.ts'

export const openaiEngineSchema = z.strictObject({
  type: z.literal('openai'),
  ...remoteTarget,
  model: z.string().min(1).default('omni-moderation-latest'),
  /** Per-category score (0-1) at or above which it blocks, e.g. `{ violence: 0.4 }`; others block when flagged. */
  thresholds: z.record(z.string(), z.number().min(0).max(1)).default({}),
}).refine(oneTarget, ONE_TARGET_MESSAGE)
export type OpenAIEngineConfig = z.infer<typeof openaiEngineSchema>

/** OpenAI's moderation categories folded onto the content_filter_result names. */
export function categoryOf(openaiCategory: string): string {
  const root = openaiCategory.split('/')[0]!
  switch (root) {
    case 'hate': case 'sexual': case 'violence': case 'harassment': case 'illicit': return root
    case 'self-harm': return 'self_harm'
    default: return 'other'
  }
}

const BATCH = 16
const CONCURRENCY = 2

interface ModerationResponse {
  results?: Array<{ flagged?: boolean; categories?: Record<string, boolean>; category_scores?: Record<string, number> }>
}

/** The OpenAI moderations API (`POST /v1/moderations`), windows sent in batches. */
export class OpenAIEngine implements RemoteEngine {
  readonly name = 'openai'
  private readonly target: ServiceEndpoint
  private readonly url: string

  constructor(private readonly cfg: OpenAIEngineConfig, resolve: EndpointResolver | undefined) {
    this.target = resolveTarget(cfg, resolve, 'openai')
    const u = new URL(this.target.url)
    const root = u.pathname.replace(/\/+$/, '') || '/v1'
    this.url = `${u.origin}${root}/moderations`
  }

  async analyze(windows: readonly WindowedText[], signal: AbortSignal): Promise<Finding[]> {
    const headers: Record<string, string> = { ...this.target.headers }
    if (this.target.apiKey !== null) headers.authorization = `Bearer ${this.target.apiKey}`
    const batches: string[][] = []
    for (let i = 0; i < windows.length; i += BATCH) batches.push(windows.slice(i, i + BATCH).map((w) => w.text))
    const findings: Finding[] = []
    await mapLimited(batches, CONCURRENCY, async (input) => {
      const res = await postJson(this.url, headers, { model: this.cfg.model, input }, signal) as ModerationResponse
      for (const r of res.results ?? []) {
        for (const [name, flagged] of Object.entries(r.categories ?? {})) {
          const score = r.category_scores?.[name]
          const threshold = this.cfg.thresholds[name]
          const blocked = threshold !== undefined && typeof score === 'number' ? score >= threshold : flagged === true
          if (blocked || flagged) findings.push({ engine: this.name, category: categoryOf(name), detail: name, score, blocked })
        }
      }
    })
    return findings
  }
}
