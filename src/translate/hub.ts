/**
 * The hub schema: OpenAI Chat Completions (request, `chat.completion`, `chat.completion.chunk`) plus the
 * extensions below, so what only some schemas have survives a round trip through the kernel. Every codec
 * reads and writes these names; docs/translation.md lists how each field maps per schema.
 *
 * Requests and answers
 * - `messages[].reasoning_content?: string` and `messages[].thinking_blocks?: ThinkingBlock[]` on assistant
 *   messages: reasoning text and Anthropic/Bedrock-style blocks with their opaque `signature` (or
 *   `redacted_thinking.data`), passed back unchanged on the next turn, never dropped on a fallback.
 * - `tool_calls[].extra_content?: { google?: { thought_signature?: string } }`: Gemini's thought signature
 *   (Google's own OpenAI-compatibility name), carried on the tool call it belongs to.
 * - content parts and `tools[]` may carry `cache_control: { type: 'ephemeral', ttl? }` (Anthropic's prompt
 *   caching marks); codecs whose target has no such thing omit it (a safe omission).
 * - `thinking?: { type: 'enabled', budget_tokens } | { type: 'disabled' }` and `reasoning_effort` map to
 *   each provider's reasoning controls.
 *
 * Usage (`usage` of answers and of the final usage-only chunk, `choices: []`)
 * - `prompt_tokens` counts ALL input tokens, cache reads and cache writes included (OpenAI's meaning);
 *   `prompt_tokens_details.cached_tokens` the cache reads, `prompt_tokens_details.cache_write_tokens` the
 *   cache writes (Anthropic's cache_creation_input_tokens); `completion_tokens` includes reasoning,
 *   `completion_tokens_details.reasoning_tokens` the reasoning part.
 *
 * Streams
 * - The first chunk carries `delta.role: 'assistant'`; text in `delta.content`; reasoning in
 *   `delta.reasoning_content`; a finished thinking block's signature as `delta.thinking_blocks: [block]`;
 *   tool calls as OpenAI does (`delta.tool_calls[{ index, id, type, function: { name, arguments } }]`, the
 *   first fragment with id and name, later ones with argument pieces); `finish_reason` on its own chunk;
 *   then one usage-only chunk (`choices: []`, `usage`) before the end. Decoders emit no `[DONE]`:
 *   decodeStream (stream.ts) ends every translated stream with OpenAI's `[DONE]` frame, which the OpenAI front
 *   door relays and other front doors replace with their own ending.
 */
export interface ThinkingBlock {
  readonly type: 'thinking' | 'redacted_thinking'
  readonly thinking?: string
  readonly signature?: string
  readonly data?: string
}

export type HubFinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter'

/** A hub stream chunk with the common envelope filled in. */
export function hubChunk(id: string, model: string, created: number, choice: Record<string, unknown> | null, usage?: Record<string, unknown>): Record<string, unknown> {
  const chunk: Record<string, unknown> = { id, object: 'chat.completion.chunk', created, model, choices: choice === null ? [] : [choice] }
  if (usage !== undefined) chunk.usage = usage
  return chunk
}

/** Hub (OpenAI-shaped) usage from the counts every provider reports in some form. */
export function hubUsage(u: { input: number; output: number; cacheRead?: number; cacheWrite?: number; reasoning?: number }): Record<string, unknown> {
  const prompt = u.input
  const usage: Record<string, unknown> = {
    prompt_tokens: prompt,
    completion_tokens: u.output,
    total_tokens: prompt + u.output,
    prompt_tokens_details: { cached_tokens: u.cacheRead ?? 0, cache_write_tokens: u.cacheWrite ?? 0 },
    completion_tokens_details: { reasoning_tokens: u.reasoning ?? 0 },
  }
  return usage
}
