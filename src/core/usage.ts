import type { MediaUsage } from '../pricing/media.ts'

/** Token usage in one canonical shape whatever the provider reported. */
export interface Usage {
  promptTokens: number
  completionTokens: number
  totalTokens: number
  /** Prompt tokens served from the provider's prompt cache (included in promptTokens). */
  cachedTokens: number
  reasoningTokens: number
  /** Prompt tokens written to the provider's prompt cache (Anthropic, Bedrock; included in promptTokens). */
  cacheWriteTokens?: number
  /** Images, audio seconds, characters… of a media call (src/media/), priced by their own units. */
  media?: MediaUsage
  /** Realtime: prompt tokens that were audio (included in promptTokens), priced at the audio input price. */
  audioPromptTokens?: number
  /** Realtime: cached prompt tokens that were audio (included in cachedTokens and audioPromptTokens). */
  audioCachedTokens?: number
  /** Realtime: completion tokens that were audio (included in completionTokens), priced at the audio output price. */
  audioCompletionTokens?: number
}

export function emptyUsage(): Usage {
  return { promptTokens: 0, completionTokens: 0, totalTokens: 0, cachedTokens: 0, reasoningTokens: 0 }
}

/** Sum of two usages; null only when both are. */
export function addUsage(a: Usage | null, b: Usage | null): Usage | null {
  if (a === null) return b
  if (b === null) return a
  return {
    promptTokens: a.promptTokens + b.promptTokens,
    completionTokens: a.completionTokens + b.completionTokens,
    totalTokens: a.totalTokens + b.totalTokens,
    cachedTokens: a.cachedTokens + b.cachedTokens,
    reasoningTokens: a.reasoningTokens + b.reasoningTokens,
    cacheWriteTokens: (a.cacheWriteTokens ?? 0) + (b.cacheWriteTokens ?? 0),
    ...(a.audioPromptTokens || b.audioPromptTokens || a.audioCompletionTokens || b.audioCompletionTokens ? {
      audioPromptTokens: (a.audioPromptTokens ?? 0) + (b.audioPromptTokens ?? 0),
      audioCachedTokens: (a.audioCachedTokens ?? 0) + (b.audioCachedTokens ?? 0),
      audioCompletionTokens: (a.audioCompletionTokens ?? 0) + (b.audioCompletionTokens ?? 0),
    } : {}),
  }
}

type Json = Record<string, unknown>
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0)

/** Reads an OpenAI chat/completions/embeddings `usage` or a Responses API `usage` object. */
export function usageFromOpenAI(raw: unknown): Usage | null {
  if (!raw || typeof raw !== 'object') return null
  const u = raw as Json
  if ('input_tokens' in u || 'output_tokens' in u) {
    const prompt = num(u.input_tokens)
    const completion = num(u.output_tokens)
    return {
      promptTokens: prompt,
      completionTokens: completion,
      totalTokens: num(u.total_tokens) || prompt + completion,
      cachedTokens: num((u.input_tokens_details as Json | undefined)?.cached_tokens),
      reasoningTokens: num((u.output_tokens_details as Json | undefined)?.reasoning_tokens),
    }
  }
  const prompt = num(u.prompt_tokens)
  const completion = num(u.completion_tokens)
  const details = u.prompt_tokens_details as Json | undefined
  const usage: Usage = {
    promptTokens: prompt,
    completionTokens: completion,
    totalTokens: num(u.total_tokens) || prompt + completion,
    cachedTokens: num(details?.cached_tokens),
    reasoningTokens: num((u.completion_tokens_details as Json | undefined)?.reasoning_tokens),
  }
  // The hub's extension (src/translate/hub.ts): cache writes reported by Anthropic and Bedrock.
  const writes = num(details?.cache_write_tokens)
  if (writes > 0) usage.cacheWriteTokens = writes
  return usage
}
