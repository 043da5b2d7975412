import { z } from 'zod'
import type { EndpointResolver, Finding, RemoteEngine, ServiceEndpoint, WindowedText } from '../types.ts'
import { mapLimited, ONE_TARGET_MESSAGE, oneTarget, postJson, remoteTarget, resolveTarget } from './remote.ts'

const AZURE_CATEGORIES = ['Hate', 'Sexual', 'SelfHarm', 'Violence'] as const
const CATEGORY_NAME: Record<string, string> = { Hate: 'hate', Sexual: 'sexual', SelfHarm: 'self_harm', Violence: 'violence' }

export const azureEngineSchema = z.strictObject({
  type: z.literal('azure'),
  ...remoteTarget,
  /** With `endpoint`: authenticate with the host's managed identity (`{}`, or `{ clientId }` for a user-assigned one) instead of a key. */
  managedIdentity: z.strictObject({ clientId: z.string().min(1).optional() }).optional(),
  apiVersion: z.string().default('2024-09-01'),
  /** Call `text:analyze` (the four harm categories and blocklists). */
  analyze: z.boolean().default(true),
  outputType: z.enum(['FourSeverityLevels', 'EightSeverityLevels']).default('FourSeverityLevels'),
  /** Severity at or above which a category blocks (0-7); categories left out are not analysed. */
  categories: z.partialRecord(z.enum(AZURE_CATEGORIES), z.number().int().min(0).max(7)).default({ Hate: 4, Sexual: 4, SelfHarm: 4, Violence: 4 }),
  /** Custom blocklists defined in the Content Safety resource. */
  blocklists: z.array(z.string().min(1)).default([]),
  haltOnBlocklistHit: z.boolean().default(false),
  /** Prompt Shields (`text:shieldPrompt`): jailbreaks in user text, indirect attacks in documents (tool results, system). */
  shieldPrompt: z.boolean().default(false),
}).refine(oneTarget, ONE_TARGET_MESSAGE)
export type AzureEngineConfig = z.infer<typeof azureEngineSchema>

const SCOPE = 'https://cognitiveservices.azure.com/.default'
const CONCURRENCY = 4

interface AnalyzeResponse {
  categoriesAnalysis?: Array<{ category?: string; severity?: number }>
  blocklistsMatch?: Array<{ blocklistName?: string }>
}
interface ShieldResponse {
  userPromptAnalysis?: { attackDetected?: boolean }
  documentsAnalysis?: Array<{ attackDetected?: boolean }>
}

/** Azure AI Content Safety: `text:analyze` per window and `text:shieldPrompt`, with an API key or managed identity. */
export class AzureEngine implements RemoteEngine {
  readonly name = 'azure'
  private readonly target: ServiceEndpoint
  private readonly base: string
  private tokenSource: (() => Promise<string>) | null = null

  constructor(private readonly cfg: AzureEngineConfig, resolve: EndpointResolver | undefined) {
    const target = resolveTarget(cfg, resolve, 'azure')
    this.target = cfg.managedIdentity && target.apiKey === null ? { ...target, managedIdentity: cfg.managedIdentity } : target
    this.base = this.target.url.replace(/\/+$/, '')
    if (this.target.apiKey === null && this.target.managedIdentity !== null) {
      const clientId = this.target.managedIdentity.clientId
      // Loaded only when used; the credential caches and renews its token.
      const credential = import('@azure/identity').then((m) => (clientId ? new m.ManagedIdentityCredential({ clientId }) : new m.ManagedIdentityCredential()))
      this.tokenSource = async () => {
        const token = await (await credential).getToken(SCOPE)
        if (!token) throw new Error('managed identity returned no token')
        return token.token
      }
    }
  }

  async analyze(windows: readonly WindowedText[], signal: AbortSignal): Promise<Finding[]> {
    const headers = await this.authHeaders()
    const findings: Finding[] = []
    const categories = Object.keys(this.cfg.categories)
    const jobs: Array<() => Promise<void>> = []
    if (this.cfg.analyze && (categories.length || this.cfg.blocklists.length)) {
      for (const w of windows) {
        jobs.push(async () => {
          const body: Record<string, unknown> = { text: w.text, outputType: this.cfg.outputType }
          if (categories.length) body.categories = categories
          if (this.cfg.blocklists.length) Object.assign(body, { blocklistNames: this.cfg.blocklists, haltOnBlocklistHit: this.cfg.haltOnBlocklistHit })
          const res = await postJson(this.url('text:analyze'), headers, body, signal) as AnalyzeResponse
          for (const c of res.categoriesAnalysis ?? []) {
            const threshold = this.cfg.categories[c.category as keyof AzureEngineConfig['categories']]
            if (threshold === undefined || typeof c.severity !== 'number') continue
            findings.push({ engine: this.name, category: CATEGORY_NAME[c.category!]!, severity: c.severity, blocked: c.severity >= threshold })
          }
          for (const m of res.blocklistsMatch ?? []) findings.push({ engine: this.name, category: 'custom_blocklists', detail: String(m.blocklistName ?? ''), blocked: true })
        })
      }
    }
    if (this.cfg.shieldPrompt) {
      for (const w of windows) {
        if (w.role === 'completion' || w.role === 'assistant') continue
        const isUser = w.role === 'user'
        jobs.push(async () => {
          const res = await postJson(this.url('text:shieldPrompt'), headers, isUser ? { userPrompt: w.text, documents: [] } : { userPrompt: '', documents: [w.text] }, signal) as ShieldResponse
          const attacked = isUser ? res.userPromptAnalysis?.attackDetected === true : (res.documentsAnalysis ?? []).some((d) => d.attackDetected === true)
          findings.push({ engine: this.name, category: isUser ? 'jailbreak' : 'indirect_attack', blocked: attacked })
        })
      }
    }
    await mapLimited(jobs, CONCURRENCY, (job) => job())
    return findings
  }

  private url(op: string): string {
    return `${this.base}/contentsafety/${op}?api-version=${encodeURIComponent(this.cfg.apiVersion)}`
  }

  private async authHeaders(): Promise<Record<string, string>> {
    const h: Record<string, string> = { ...this.target.headers }
    if (this.target.apiKey !== null) h['ocp-apim-subscription-key'] = this.target.apiKey
    else if (this.tokenSource) h.authorization = `Bearer ${await this.tokenSource()}`
    return h
  }
}
