import type { BackendConfig } from '../config/schema.ts'
import type { RequestContext } from '../core/context.ts'
import type { Provider } from '../providers/types.ts'
import { responsesCodec } from '../translate/openai-to-responses.ts'
import type { BackendCodec } from '../translate/types.ts'

/**
 * Whether a backend serves OpenAI's Responses API itself: an OpenAI-schema provider that lists the operation
 * (openai, azure-openai, the mock, Responses-capable presets), unless the backend says `responses: translate`
 * (a chat-only OpenAI-compatible server). Such a backend keeps its own conversation state.
 */
export function speaksResponses(provider: Provider, backend: BackendConfig): boolean {
  return provider.speaks === 'openai' && provider.codec === undefined && provider.operations.has('responses') && backend.responses !== 'translate'
}

/** The codec for a Responses client at this backend when it speaks Responses natively (passthrough), else undefined. */
export function nativeResponsesCodec(provider: Provider, backend: BackendConfig, ctx: RequestContext): BackendCodec | undefined {
  return ctx.client?.schema === 'responses' && speaksResponses(provider, backend) ? responsesCodec : undefined
}
