import OpenAI from 'openai'
import type { ChatCompletionCreateParamsNonStreaming, ChatCompletionCreateParamsStreaming } from 'openai/resources/chat/completions'

/** Test helpers for the cache policies: calls through the official SDK returning what the tests compare. */
export interface Answer { content: string; cache: string | null; score: string | null; servedBy: string | null; usage: unknown; backend: string | null }

export async function chat(client: OpenAI, params: Omit<ChatCompletionCreateParamsNonStreaming, 'model'> & { model?: string }, headers: Record<string, string> = {}): Promise<Answer> {
  const { data, response } = await client.chat.completions.create({ model: 'gpt-4o-mini', ...params } as ChatCompletionCreateParamsNonStreaming, { headers }).withResponse()
  return { content: data.choices[0]!.message.content ?? '', cache: response.headers.get('x-sluice-cache'), score: response.headers.get('x-sluice-cache-score'), servedBy: response.headers.get('x-sluice-served-by'), usage: data.usage, backend: response.headers.get('x-sluice-backend') }
}

export interface StreamAnswer extends Answer { chunks: Array<Record<string, any>> }

export async function chatStream(client: OpenAI, params: Omit<ChatCompletionCreateParamsStreaming, 'model' | 'stream'> & { model?: string }): Promise<StreamAnswer> {
  const { data: stream, response } = await client.chat.completions.create({ model: 'gpt-4o-mini', ...params, stream: true } as ChatCompletionCreateParamsStreaming).withResponse()
  const chunks: Array<Record<string, any>> = []
  let content = ''
  let usage: unknown = null
  for await (const c of stream) {
    chunks.push(c as unknown as Record<string, any>)
    content += c.choices[0]?.delta?.content ?? ''
    if (c.usage) usage = c.usage
  }
  return { content, chunks, usage, cache: response.headers.get('x-sluice-cache'), score: response.headers.get('x-sluice-cache-score'), servedBy: response.headers.get('x-sluice-served-by'), backend: response.headers.get('x-sluice-backend') }
}

/**
 * Stores happen after the response (in `complete`): retry a lookup until `ok` holds. A wait that runs out
 * FAILS (it throws with the last value seen): returning the last value instead would let a "hit" check pass
 * quietly on a miss, and a cache that stores nothing would pass every test that waits for a hit.
 */
export async function eventually<T>(fn: () => Promise<T>, ok: (v: T) => boolean, what = 'condition', timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let v = await fn()
  while (!ok(v)) {
    if (Date.now() > deadline) throw new Error(`${what} never held within ${timeoutMs} ms; last value: ${JSON.stringify(v)}`)
    await new Promise((r) => setTimeout(r, 50))
    v = await fn()
  }
  return v
}
