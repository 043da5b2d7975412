import type { MediaOperation } from '../core/context.ts'
import type { Usage } from '../core/usage.ts'
import type { MediaUsage } from '../pricing/media.ts'
import { countTextTokens } from '../tokens/count.ts'

type Json = Record<string, unknown>
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0)
const obj = (v: unknown): Json | null => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : null)

/**
 * What a media call used, in tokens where the answer reports them and in its own units otherwise: images
 * (count, size, quality), audio seconds, characters, searches. Built from the request (fields read from
 * the form or the JSON body) and from the answer, or from the events of a streamed one.
 */
export class MediaMeter {
  private prompt = 0
  private completion = 0
  private cached = 0
  private readonly media: MediaUsage = {}
  private images = 0
  private fallbackSeconds: number | null = null

  constructor(private readonly op: MediaOperation, private readonly request: Json, private readonly model: string) {
    if (op === 'audio.speech' && typeof request.input === 'string') {
      // tts-1 bills characters; the token-priced speech models bill the input's tokens (reported only in SSE answers).
      this.media.characters = [...request.input].length
      this.prompt = countTextTokens(request.input, model)
    }
  }

  /** A complete JSON answer. */
  answer(body: Json): void {
    switch (this.op) {
      case 'images.generations':
      case 'images.edits':
        this.images += Array.isArray(body.data) ? body.data.length : 0
        this.tokens(body.usage)
        break
      case 'audio.transcriptions':
      case 'audio.translations':
        this.tokens(body.usage)
        if (this.media.audioSeconds === undefined && typeof body.duration === 'number') this.media.audioSeconds = num(body.duration)
        break
      case 'rerank': {
        const u = obj(body.usage)
        if (u) this.prompt = num(u.total_tokens) || num(u.prompt_tokens) || num(u.input_tokens)
        const billed = obj(obj(body.meta)?.billed_units)
        if (billed && billed.search_units !== undefined) this.media.searches = num(billed.search_units)
        break
      }
      default:
        break
    }
  }

  /** One event of a streamed answer (images, transcripts, speech with `stream_format: sse`). */
  event(json: Json): void {
    const type = typeof json.type === 'string' ? json.type : ''
    if (type === 'image_generation.completed' || type === 'image_edit.completed') {
      this.images++
      this.tokens(json.usage)
    } else if (type === 'transcript.text.done' || type === 'speech.audio.done') {
      if (type === 'speech.audio.done') this.prompt = 0 // the reported count replaces the gateway's own
      this.tokens(json.usage)
    }
  }

  /** `usage` in the Images / Audio shapes: tokens (with their image/audio parts) or seconds of audio. */
  private tokens(raw: unknown): void {
    const u = obj(raw)
    if (!u) return
    if (u.type === 'duration') {
      this.media.audioSeconds = num(u.seconds)
      return
    }
    this.prompt += num(u.input_tokens)
    this.completion += num(u.output_tokens)
    const details = obj(u.input_tokens_details) ?? obj(u.input_token_details)
    if (details) {
      if (details.image_tokens !== undefined) this.media.imageInputTokens = (this.media.imageInputTokens ?? 0) + num(details.image_tokens)
      if (details.audio_tokens !== undefined) this.media.audioInputTokens = (this.media.audioInputTokens ?? 0) + num(details.audio_tokens)
      this.cached += num(details.cached_tokens)
    }
  }

  /** The upload's own duration (a WAV header), used when the answer reports none. */
  uploadSeconds(seconds: number | null): void {
    if (seconds !== null && this.media.audioSeconds === undefined) this.fallbackSeconds = seconds
  }

  usage(): Usage {
    const media: MediaUsage = { ...this.media }
    if (media.audioSeconds === undefined && this.fallbackSeconds !== null && media.audioInputTokens === undefined && this.prompt === 0) media.audioSeconds = this.fallbackSeconds
    if ((this.op === 'images.generations' || this.op === 'images.edits') && this.images > 0) {
      media.images = { count: this.images, size: sizeOf(this.request), quality: qualityOf(this.request, this.model) }
    }
    return { promptTokens: this.prompt, completionTokens: this.completion, totalTokens: this.prompt + this.completion, cachedTokens: Math.min(this.cached, this.prompt), reasoningTokens: 0, media }
  }
}

function sizeOf(request: Json): string {
  const s = request.size
  return typeof s === 'string' && /^\d{2,5}x\d{2,5}$/.test(s) ? s : '1024x1024'
}

/** dall-e-3: `standard` or `hd`; dall-e-2 has one quality; the GPT image models low/medium/high (tokens price them). */
function qualityOf(request: Json, model: string): string {
  const q = typeof request.quality === 'string' ? request.quality.toLowerCase() : ''
  if (/dall-e-2/.test(model)) return 'standard'
  if (q === 'hd' || q === 'high') return /dall-e-3/.test(model) ? 'hd' : q
  return /^[a-z]{1,16}$/.test(q) && q !== 'auto' ? q : 'standard'
}
