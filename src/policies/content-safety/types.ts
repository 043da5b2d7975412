/** What one engine found in one text: a category (in Azure's content_filter_result names) and how bad. */
export interface Finding {
  readonly engine: string
  /** hate | sexual | violence | self_harm | jailbreak | indirect_attack | custom_blocklists | pii | harassment | illicit … */
  readonly category: string
  /** Azure's severity (0-7) when the engine gives one. */
  readonly severity?: number
  /** A model score (0-1) when the engine gives one (OpenAI moderation). */
  readonly score?: number
  /** The blocklist id, PII kind or pattern index: what a client may be told. */
  readonly detail?: string
  /** Whether it blocks (over the threshold); engines also report what they saw below it. */
  readonly blocked: boolean
}

/** Whose text it is: the user's, the system/developer prompt, tool results (documents), or the model's answer. */
export type TextRole = 'user' | 'system' | 'tool' | 'assistant' | 'completion'

/** One piece of text to check, editable in place (redaction writes back into the request body). */
export interface TextSegment {
  readonly role: TextRole
  text: string
  /** Writes the (redacted) text back where it came from. */
  write(text: string): void
}

/** A remote engine (Azure AI Content Safety, OpenAI moderation): asked about windows of text. */
export interface RemoteEngine {
  readonly name: string
  /** Findings that block, for the windows of one role's texts. Throws on an outage or a timeout. */
  analyze(windows: readonly WindowedText[], signal: AbortSignal): Promise<Finding[]>
}

export interface WindowedText { readonly role: TextRole; readonly text: string }

/** Where a remote engine is and how to authenticate to it, from a `backends` entry or the engine's own options. */
export interface ServiceEndpoint {
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly apiKey: string | null
  readonly managedIdentity: { readonly clientId?: string } | null
}

export type EndpointResolver = (backendId: string) => ServiceEndpoint | null
