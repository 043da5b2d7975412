import { z } from 'zod'
import type { RequestContext } from '../../core/context.ts'
import { GatewayError, GW_ERR } from '../../core/errors.ts'
import type { Dispatch, Policy, UpstreamResult } from '../../core/pipeline.ts'
import { usageFromOpenAI } from '../../core/usage.ts'
import { duration } from '../../config/schema-units.ts'
import type { PolicyFactory } from '../types.ts'
import { SafetyChecker } from './checker.ts'
import { AzureEngine, azureEngineSchema } from './engines/azure.ts'
import { BuiltinEngine, builtinEngineSchema } from './engines/builtin.ts'
import { OpenAIEngine, openaiEngineSchema } from './engines/openai.ts'
import { guardStream } from './stream.ts'
import { completionSegments, promptSegments } from './texts.ts'
import type { Finding, RemoteEngine, TextSegment } from './types.ts'
import type { ScreeningPolicy } from './screen.ts'
import { blockedCategories, contentFilterError } from './verdict.ts'
import { windowCount } from './windows.ts'

const schema = z.strictObject({
  engines: z.array(z.discriminatedUnion('type', [builtinEngineSchema, azureEngineSchema, openaiEngineSchema])).min(1),
  /** Besides the user's messages: system/developer prompts, tool results (as documents), earlier assistant turns. */
  check: z.strictObject({
    system: z.boolean().default(false),
    tools: z.boolean().default(false),
    assistant: z.boolean().default(false),
  }).default({ system: false, tools: false, assistant: false }),
  /** Also check what the model answers; streams in windows of `streamWindowSize`. */
  onCompletions: z.boolean().default(false),
  /** Characters per check (Azure Content Safety takes at most 10,000 per call). */
  windowSize: z.number().int().min(100).max(10_000).default(10_000),
  windowOverlap: z.number().int().min(0).max(1000).default(100),
  /** Characters of a streamed answer held back and checked at a time (at most one window is ever held). */
  streamWindowSize: z.number().int().min(20).max(10_000).default(1000),
  /** Longer prompts are refused (413) rather than sent through this many windows. */
  maxWindows: z.number().int().positive().max(10_000).default(100),
  /** A remote engine unreachable, failing or slower than `timeout`: `open` lets the request through, `closed` refuses it (503). */
  onFailure: z.enum(['open', 'closed']).default('closed'),
  timeout: duration.default(3_000),
})
type Options = z.infer<typeof schema>

/**
 * `content-safety` (APIM's llm-content-safety): prompts checked before they are sent, completions (whole
 * or streamed in windows) before they are shown. A block answers 400 `content_filter` in Azure OpenAI's
 * shape; in a stream it ends the stream with that error as an event.
 */
export const contentSafetyPolicy: PolicyFactory<Options> = {
  name: 'content-safety',
  schema,
  create(o, deps) {
    const builtins: BuiltinEngine[] = []
    const remotes: RemoteEngine[] = []
    for (const e of o.engines) {
      if (e.type === 'builtin') builtins.push(new BuiltinEngine(e))
      else if (e.type === 'azure') remotes.push(new AzureEngine(e, deps.backendEndpoint))
      else remotes.push(new OpenAIEngine(e, deps.backendEndpoint))
    }
    const checker = new SafetyChecker({ builtins, remotes, windowSize: o.windowSize, windowOverlap: o.windowOverlap, onFailure: o.onFailure, timeout: o.timeout, metrics: deps.metrics, logger: deps.logger })
    const logBlock = (ctx: RequestContext, where: string, findings: readonly Finding[]) =>
      deps.logger.info({ reqId: ctx.id, consumer: ctx.principal?.consumerId ?? null, where, categories: blockedCategories(findings) }, 'content filtered')

    const tooLong = (segments: readonly TextSegment[], what: string) => {
      let windows = 0
      for (const s of segments) windows += windowCount(s.text.length, o.windowSize, o.windowOverlap)
      if (windows > o.maxWindows) {
        throw new GatewayError(GW_ERR.REQUEST_TOO_LARGE, `The ${what} is longer than the content-safety policy checks (${o.maxWindows} windows of ${o.windowSize} characters).`)
      }
    }
    const policy: ScreeningPolicy = {
      name: 'content-safety',
      // MCP tool arguments and results go through the same checker (src/mcp/content-screen.ts).
      contentScreen: {
        async screen(segments, signal) {
          tooLong(segments, 'text')
          return checker.check(segments, signal)
        },
      },
      async inbound(ctx) {
        const segments = promptSegments(ctx.operation, ctx.body, o.check)
        tooLong(segments, 'prompt')
        const findings = await checker.check(segments, ctx.signal)
        if (findings.some((f) => f.blocked)) {
          logBlock(ctx, 'prompt', findings)
          throw contentFilterError(findings, 'prompt')
        }
      },
    }
    if (o.onCompletions) {
      policy.backend = (next: Dispatch): Dispatch => async (ctx): Promise<UpstreamResult> => {
        const result = await next(ctx)
        if (result.status >= 400) return result
        if (result.kind === 'json') {
          const segments = completionSegments(ctx.operation, result.body)
          const before = segments.map((s) => s.text)
          const findings = await checker.check(segments, ctx.signal)
          if (findings.some((f) => f.blocked)) {
            // The backend did the work: its usage is billed and counted though the answer is withheld.
            ctx.usage = usageFromOpenAI(result.body.usage)
            logBlock(ctx, 'completion', findings)
            throw contentFilterError(findings, 'completion')
          }
          if (segments.some((s, i) => s.text !== before[i])) result.modified = true
          return result
        }
        return {
          ...result,
          frames: guardStream(result.frames, {
            windowSize: o.streamWindowSize,
            overlap: o.windowOverlap,
            // A stream window plus its overlap is checked like any text: in service-sized windows with overlap.
            check: (seg) => checker.check([seg], ctx.signal),
            redact: (text) => checker.redact(text),
            blocked: (findings) => { logBlock(ctx, 'stream', findings); return contentFilterError(findings, 'completion') },
          }),
        }
      }
    }
    return policy
  },
}
