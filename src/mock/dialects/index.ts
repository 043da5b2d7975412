import type { Ctx } from '../engine.ts'
import { entraDialect } from './entra.ts'
import { bedrockDialect } from './bedrock.ts'
import { anthropicDialect } from './anthropic.ts'
import { anthropicVertexDialect } from './anthropic-vertex.ts'
import { geminiDialect } from './gemini.ts'
import { googleIdentityDialect } from './google-identity.ts'
import { openaiFilesDialect } from './openai-files.ts'
import { bedrockInvokeDialect } from './bedrock-invoke.ts'

/**
 * A wire protocol the mock speaks besides OpenAI's (llm.ts): Anthropic Messages, Gemini, Bedrock, identity
 * endpoints… Each dialect is one module that owns its paths, checks its own auth, applies the shared
 * fault injection (`ctx.eff`) in its own error shapes, and streams in its own exact framing, using the one
 * text and usage engine in ../text.ts so every dialect answers the same words with the same token counts.
 */
export interface MockDialect {
  readonly name: string
  matches(method: string, path: string): boolean
  /** Answers the request (raw body bytes; path without the query). */
  handle(ctx: Ctx, raw: Buffer, path: string): void
}

/** Registered dialects, consulted before the OpenAI routes. */
export const MOCK_DIALECTS: readonly MockDialect[] = [entraDialect, anthropicDialect, anthropicVertexDialect, geminiDialect, googleIdentityDialect, bedrockDialect, openaiFilesDialect, bedrockInvokeDialect]
