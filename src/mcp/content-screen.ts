import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { GatewayError } from '../core/errors.ts'
import type { ContentScreen } from '../policies/content-safety/screen.ts'
import type { Finding, TextRole, TextSegment } from '../policies/content-safety/types.ts'
import { blockedCategories, contentFilterResult } from '../policies/content-safety/verdict.ts'
import { MCP_ERR, mcpError } from './errors.ts'

/** How deep into nested arguments strings are looked for (deeper ones are screened as their JSON text). */
const MAX_DEPTH = 32

/**
 * Content safety on MCP tool calls, with the consumer's content-safety policies (global and product):
 * the call's arguments before it is made (as the user's text: jailbreaks, blocklists, PII), its result before
 * it reaches the client (as a tool's document: indirect prompt injection too). PII redaction rewrites the
 * strings in place, so the API, the upstream server or the client sees the redacted text. A block is the
 * JSON-RPC error -32013 `content_filter` with Azure's `content_filter_result`, saying whether the arguments
 * or the result were filtered.
 */
export class ToolContentScreen {
  constructor(private readonly screens: readonly ContentScreen[]) {}

  get active(): boolean {
    return this.screens.length > 0
  }

  async arguments(args: Record<string, unknown>, signal: AbortSignal): Promise<void> {
    const segments: TextSegment[] = []
    collect(args, 'user', segments, 0)
    await this.run(segments, 'arguments', signal)
  }

  async result(result: CallToolResult, signal: AbortSignal): Promise<void> {
    const segments: TextSegment[] = []
    for (const item of result.content ?? []) {
      const c = item as { type?: string; text?: unknown; resource?: { text?: unknown } }
      if (c.type === 'text' && typeof c.text === 'string') segments.push(segment('tool', c.text, (t) => { c.text = t }))
      else if (c.type === 'resource' && c.resource && typeof c.resource.text === 'string') {
        const r = c.resource
        segments.push(segment('tool', r.text as string, (t) => { r.text = t }))
      }
    }
    if (result.structuredContent) collect(result.structuredContent, 'tool', segments, 0)
    await this.run(segments, 'result', signal)
  }

  private async run(segments: TextSegment[], where: 'arguments' | 'result', signal: AbortSignal): Promise<void> {
    if (segments.length === 0) return
    for (const screen of this.screens) {
      let findings: Finding[]
      try {
        findings = await screen.screen(segments, signal)
      } catch (err) {
        if (err instanceof GatewayError) {
          if (err.status === 413) throw mcpError(MCP_ERR.CONTENT_FILTERED, `${where === 'arguments' ? 'The tool arguments are' : 'The tool result is'} longer than the content-safety policy checks.`, { code: 'content_too_long', where })
          throw mcpError(MCP_ERR.CONTENT_SAFETY_UNAVAILABLE, `The content-safety check is unavailable; the tool ${where === 'arguments' ? 'was not called' : 'result was withheld'}. Retry shortly.`, { code: 'service_unavailable', where })
        }
        throw err
      }
      if (findings.some((f) => f.blocked)) {
        const what = where === 'arguments' ? 'The tool arguments were' : 'The tool result was'
        throw mcpError(MCP_ERR.CONTENT_FILTERED, `${what} filtered by the gateway's content-safety policy (${blockedCategories(findings).join(', ')}).`, {
          code: 'content_filter', where, content_filter_result: contentFilterResult(findings),
        })
      }
    }
  }
}

function segment(role: TextRole, text: string, write: (t: string) => void): TextSegment {
  return { role, text, write }
}

/** Every string in a JSON value, each written back where it came from. */
function collect(value: unknown, role: TextRole, out: TextSegment[], depth: number): void {
  if (!value || typeof value !== 'object') return
  const entries: Array<[string | number, unknown]> = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value)
  const holder = value as Record<string | number, unknown>
  for (const [k, v] of entries) {
    if (typeof v === 'string') out.push(segment(role, v, (t) => { holder[k] = t }))
    else if (v && typeof v === 'object') {
      if (depth < MAX_DEPTH) collect(v, role, out, depth + 1)
      else out.push(segment(role, JSON.stringify(v), (t) => { try { holder[k] = JSON.parse(t) } catch { holder[k] = t } }))
    }
  }
}
