/**
 * The shipped price table: public list prices in USD per 1M tokens (standard tier, no batch discount),
 * keyed by the normalised model name (no date suffix, see normaliseModel in table.ts). `cached` is the
 * price of prompt tokens served from the provider's prompt cache; absent means "billed as input".
 * Config `pricing.models` overrides or extends any entry.
 *
 * Compiled 2026-11-21 from the providers' pricing pages as quoted by several public sources that agree:
 * - OpenAI (platform.openai.com/docs/pricing): gpt-4o and gpt-4o-mini as listed by an Elixir client's table
 *   (hex.pm openai_responses, "last updated 2025-06-03") and two pricing guides of 2026; gpt-4.1 family
 *   from the same Elixir table and LiteLLM's model cost map; gpt-5 family from an ADK-Rust pricing module
 *   (March 2026) and GitHub's Copilot models-and-pricing table; gpt-5.4 / gpt-5.5 from GitHub's table
 *   and a June 2026 pricing guide; embeddings from two pricing guides.
 * - Anthropic (claude.com/pricing): cache-read prices as "cached", from GitHub's Copilot table, which
 *   lists the vendors' per-token prices.
 * - Anthropic cache writes: 1.25× the input price (the 5-minute cache TTL), Anthropic's prompt-caching docs.
 * - OpenAI-compatible clouds (Groq, Cerebras, xAI, DeepSeek, Mistral, Perplexity): a public pricing
 *   lookup table of February 2026 that cites the Groq console and the providers' APIs (crewswarm's
 *   model-pricing-lookup script); Groq's 70B figures agree with two other public tables. Together,
 *   Fireworks, DeepInfra and OpenRouter price per hosted model and change often: set `pricing.models`.
 *   Local servers (ollama, vllm, lmstudio) have no list price: set one in `pricing.models` to charge back.
 * - OpenAI Realtime models (text and audio token prices): the model pages of developers.openai.com, read
 *   2026-12-01: gpt-realtime-1.5 and gpt-realtime-2 (text $4 in / $0.40 cached, audio $32 / $0.40 / $64;
 *   gpt-realtime's text figures from the models comparison page, its audio as gpt-realtime-1.5's),
 *   gpt-realtime-2.1-mini (as gpt-realtime-mini: text $0.60 / $0.06 / $2.40, audio $10 / $0.30 / $20),
 *   gpt-4o-realtime-preview and gpt-4o-mini-realtime-preview.
 * Prices change: check them, and set `pricing.models` in the config for negotiated rates.
 */
export interface ModelPrice {
  /** USD per 1M prompt tokens not served from cache. */
  readonly input: number
  /** USD per 1M completion tokens (reasoning tokens included: they are billed as output). */
  readonly output: number
  /** USD per 1M cached prompt tokens; absent: billed as input. */
  readonly cached?: number
  /** USD per 1M prompt tokens written to the provider's cache (Anthropic: 1.25× input for the 5-minute TTL); absent: billed as input. */
  readonly cacheWrite?: number
  // Media units (src/pricing/media.ts): absent ones do not apply to the model.
  /** USD per image by `quality:size` (dall-e-2, dall-e-3). */
  readonly perImage?: Readonly<Record<string, number>>
  /** USD per 1M image input tokens (gpt-image-1); absent: billed as input. */
  readonly imageInput?: number
  /** USD per 1M audio input tokens (gpt-4o-transcribe; Realtime: those not served from cache); absent: billed as input. */
  readonly audioInput?: number
  /** USD per minute of input audio, billed by the second (whisper-1). */
  readonly perAudioMinute?: number
  /** USD per 1M characters of input text (tts-1, tts-1-hd). */
  readonly perMillionCharacters?: number
  /** USD per 1,000 searches (Cohere rerank). */
  readonly perThousandSearches?: number
  /** Realtime: USD per 1M cached audio prompt tokens; absent: billed as cached text. */
  readonly audioCached?: number
  /** Realtime: USD per 1M audio completion tokens; absent: billed as text output. */
  readonly audioOutput?: number
}

export const PRICES_DATE = '2026-11-21'

export const SHIPPED_PRICES: Readonly<Record<string, ModelPrice>> = {
  // OpenAI
  'gpt-4o': { input: 2.5, output: 10, cached: 1.25 },
  'gpt-4o-mini': { input: 0.15, output: 0.6, cached: 0.075 },
  'gpt-4.1': { input: 2, output: 8, cached: 0.5 },
  'gpt-4.1-mini': { input: 0.4, output: 1.6, cached: 0.1 },
  'gpt-4.1-nano': { input: 0.1, output: 0.4, cached: 0.025 },
  'gpt-5': { input: 1.25, output: 10, cached: 0.125 },
  'gpt-5-mini': { input: 0.25, output: 2, cached: 0.025 },
  'gpt-5-nano': { input: 0.05, output: 0.4, cached: 0.005 },
  'gpt-5.4': { input: 2.5, output: 15, cached: 0.25 },
  'gpt-5.4-mini': { input: 0.75, output: 4.5, cached: 0.075 },
  'gpt-5.4-nano': { input: 0.2, output: 1.25, cached: 0.02 },
  'gpt-5.5': { input: 5, output: 30, cached: 0.5 },
  'text-embedding-3-small': { input: 0.02, output: 0 },
  'text-embedding-3-large': { input: 0.13, output: 0 },
  // OpenAI media (platform.openai.com/docs/pricing: "Image generation", "Transcription and speech generation",
  // "Moderation"), in their own units. dall-e-3's per-image table also as quoted by a public API portal's docs
  // (docs.dev.xavier.icvr.xyz/models/openai/dall-e-3); gpt-4o-mini-tts as quoted in the OpenAI community
  // thread "Understanding gpt-4o-mini-tts pricing" (input $0.60, audio output $12.00 per 1M).
  'dall-e-2': { input: 0, output: 0, perImage: { 'standard:256x256': 0.016, 'standard:512x512': 0.018, 'standard:1024x1024': 0.02 } },
  'dall-e-3': { input: 0, output: 0, perImage: { 'standard:1024x1024': 0.04, 'standard:1024x1792': 0.08, 'standard:1792x1024': 0.08, 'hd:1024x1024': 0.08, 'hd:1024x1792': 0.12, 'hd:1792x1024': 0.12 } },
  // gpt-image-1: text input $5, cached text $1.25, image input $10, image output $40 per 1M tokens (usage is reported).
  'gpt-image-1': { input: 5, cached: 1.25, imageInput: 10, output: 40 },
  'gpt-image-1-mini': { input: 2, cached: 0.2, imageInput: 2.5, output: 8 },
  'whisper-1': { input: 0, output: 0, perAudioMinute: 0.006 },
  // gpt-4o(-mini)-transcribe: text input, audio input and text output per 1M tokens (usage type "tokens").
  'gpt-4o-transcribe': { input: 2.5, audioInput: 6, output: 10 },
  'gpt-4o-mini-transcribe': { input: 1.25, audioInput: 3, output: 5 },
  'tts-1': { input: 0, output: 0, perMillionCharacters: 15 },
  'tts-1-hd': { input: 0, output: 0, perMillionCharacters: 30 },
  // gpt-4o-mini-tts: text input and audio output per 1M tokens (output tokens are reported with stream_format "sse").
  'gpt-4o-mini-tts': { input: 0.6, output: 12 },
  // Moderations are free (both names are looked up without their -latest suffix).
  'omni-moderation': { input: 0, output: 0 },
  'text-moderation': { input: 0, output: 0 },
  // Cohere Rerank 3.5: $2.00 per 1,000 searches (cohere.com/pricing).
  'rerank-v3.5': { input: 0, output: 0, perThousandSearches: 2 },
  // OpenAI Realtime: audio tokens have their own prices (`audio*`), text tokens the usual three.
  'gpt-realtime': { input: 4, output: 16, cached: 0.4, audioInput: 32, audioCached: 0.4, audioOutput: 64 },
  'gpt-realtime-1.5': { input: 4, output: 16, cached: 0.4, audioInput: 32, audioCached: 0.4, audioOutput: 64 },
  'gpt-realtime-2': { input: 4, output: 24, cached: 0.4, audioInput: 32, audioCached: 0.4, audioOutput: 64 },
  'gpt-realtime-mini': { input: 0.6, output: 2.4, cached: 0.06, audioInput: 10, audioCached: 0.3, audioOutput: 20 },
  'gpt-realtime-2.1-mini': { input: 0.6, output: 2.4, cached: 0.06, audioInput: 10, audioCached: 0.3, audioOutput: 20 },
  'gpt-4o-realtime-preview': { input: 5, output: 20, cached: 2.5, audioInput: 40, audioCached: 2.5, audioOutput: 80 },
  'gpt-4o-mini-realtime-preview': { input: 0.6, output: 2.4, cached: 0.3, audioInput: 10, audioCached: 0.3, audioOutput: 20 },
  // Anthropic
  'claude-haiku-4-5': { input: 1, output: 5, cached: 0.1, cacheWrite: 1.25 },
  'claude-sonnet-4': { input: 3, output: 15, cached: 0.3, cacheWrite: 3.75 },
  'claude-sonnet-4-5': { input: 3, output: 15, cached: 0.3, cacheWrite: 3.75 },
  'claude-opus-4-5': { input: 5, output: 25, cached: 0.5, cacheWrite: 6.25 },
  // OpenAI-compatible clouds (the presets), keyed without the provider's own prefix (`meta-llama/`, `openai/`…).
  // Groq
  'llama-3.1-8b-instant': { input: 0.05, output: 0.08 },
  'llama-3.3-70b-versatile': { input: 0.59, output: 0.79 },
  'llama-4-scout-17b-16e-instruct': { input: 0.11, output: 0.34 },
  'llama-4-maverick-17b-128e-instruct': { input: 0.2, output: 0.6 },
  'gpt-oss-20b': { input: 0.075, output: 0.3 },
  'gpt-oss-120b': { input: 0.15, output: 0.6 },
  'qwen3-32b': { input: 0.29, output: 0.59 },
  'kimi-k2-instruct': { input: 1, output: 3 },
  // Cerebras
  'llama3.1-8b': { input: 0.04, output: 0.08 },
  // xAI
  'grok-3': { input: 3, output: 15 },
  'grok-3-mini': { input: 0.3, output: 0.5 },
  'grok-4-fast-reasoning': { input: 0.2, output: 0.5 },
  'grok-4-fast-non-reasoning': { input: 0.2, output: 0.5 },
  'grok-code-fast-1': { input: 0.2, output: 1.5 },
  // DeepSeek
  'deepseek-chat': { input: 0.14, output: 0.28 },
  'deepseek-reasoner': { input: 0.55, output: 2.19 },
  // Mistral
  'mistral-large': { input: 0.5, output: 1.5 },
  'codestral': { input: 0.15, output: 0.3 },
  // Perplexity
  'sonar': { input: 0.2, output: 0.2 },
  'sonar-pro': { input: 1, output: 5 },
}
