import type { Usage } from '../core/usage.ts'
import type { ModelPrice } from './prices.ts'

/**
 * What an image, audio or speech call is billed by besides tokens (src/media/usage.ts reads it from the
 * request and the answer). Token counts of such calls stay in `Usage` (prompt/completion), with the image
 * and audio parts of the prompt named here so they take their own prices.
 */
export interface MediaUsage {
  /** Images produced: how many, at which size and quality (per-image models: dall-e-2, dall-e-3). */
  images?: { count: number; size: string; quality: string }
  /** Seconds of input audio (per-minute models: whisper-1). */
  audioSeconds?: number
  /** Characters of input text (per-character models: tts-1, tts-1-hd). */
  characters?: number
  /** Searches (Cohere-style rerank billing: one query over up to 100 documents). */
  searches?: number
  /** Prompt tokens that were image input (gpt-image-1 edits), included in promptTokens. */
  imageInputTokens?: number
  /** Prompt tokens that were audio input (gpt-4o-transcribe), included in promptTokens. */
  audioInputTokens?: number
}

/** The key of one per-image price: `quality:size`, e.g. `hd:1024x1792` (dall-e-2 has one quality, `standard`). */
export function imagePriceKey(quality: string, size: string): string {
  return `${quality}:${size}`
}

/**
 * USD for a call with media units: images at their per-image price (a size/quality the table lacks is
 * charged as the dearest listed one, so a bill is never under), audio by the second at the per-minute
 * price, characters and searches at theirs, and the tokens: text prompt at `input`, image and audio prompt
 * parts at `imageInput` / `audioInput` (falling back to `input`), completion at `output`.
 */
export function mediaCostUsd(price: ModelPrice, usage: Usage, media: MediaUsage): number {
  let usd = 0
  if (media.images && price.perImage) {
    const table = price.perImage
    const each = table[imagePriceKey(media.images.quality, media.images.size)] ?? Math.max(0, ...Object.values(table))
    usd += media.images.count * each
  }
  if (media.audioSeconds !== undefined && price.perAudioMinute !== undefined) usd += (media.audioSeconds / 60) * price.perAudioMinute
  if (media.characters !== undefined && price.perMillionCharacters !== undefined) usd += (media.characters * price.perMillionCharacters) / 1e6
  if (media.searches !== undefined && price.perThousandSearches !== undefined) usd += (media.searches * price.perThousandSearches) / 1e3
  const image = Math.min(media.imageInputTokens ?? 0, usage.promptTokens)
  const audio = Math.min(media.audioInputTokens ?? 0, usage.promptTokens - image)
  const cached = Math.min(usage.cachedTokens, usage.promptTokens - image - audio)
  const text = usage.promptTokens - image - audio - cached
  usd += (text * price.input + cached * (price.cached ?? price.input) + image * (price.imageInput ?? price.input) + audio * (price.audioInput ?? price.input) + usage.completionTokens * price.output) / 1e6
  return usd
}
