import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import type { Logger } from 'pino'
import type { CallContext, ExposedTool, ToolOrigin, ToolSource } from './source.ts'

export interface AggregateMember {
  readonly id: string
  readonly source: ToolSource
}

/**
 * A virtual server combining the tools of several servers. Each member's tools are listed as
 * `<member><separator><tool>` so names never clash; a member that fails or does not answer within
 * `memberTimeout` is left out of that answer (the reason is logged) while the others keep working.
 * Order is made stable by the endpoint (tools sorted by name), whatever order members answer in. A member
 * that is an upstream server keeps its upstream session in the consumer's gateway session (one per
 * consumer session, never shared between consumers), under its own id.
 */
export class AggregateSource implements ToolSource {
  constructor(
    private readonly id: string,
    private readonly members: readonly AggregateMember[],
    private readonly separator: string,
    private readonly memberTimeout: number,
    private readonly logger: Logger,
  ) {}

  async listTools(ctx: CallContext): Promise<ExposedTool[]> {
    const settled = await Promise.all(this.members.map(async (m) => {
      const timer = new AbortController()
      const t = setTimeout(() => timer.abort(), this.memberTimeout)
      const signal = AbortSignal.any([ctx.signal, timer.signal])
      try {
        const tools = await Promise.race([
          m.source.listTools({ ...ctx, signal }),
          new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(new Error(`no answer within ${this.memberTimeout} ms`)), { once: true })),
        ])
        return tools.map((t) => ({ tool: { ...t.tool, name: `${m.id}${this.separator}${t.tool.name}` }, origin: t.origin }))
      } catch (err) {
        if (!ctx.signal.aborted) {
          this.logger.warn({ server: this.id, member: m.id, reason: String((err as Error)?.message ?? err).slice(0, 200) }, 'mcp: aggregate member left out of tools/list')
        }
        return []
      } finally {
        clearTimeout(t)
      }
    }))
    return settled.flat()
  }

  private split(name: string): { member: AggregateMember; tool: string } | null {
    for (const m of this.members) {
      const prefix = `${m.id}${this.separator}`
      if (name.startsWith(prefix) && name.length > prefix.length) return { member: m, tool: name.slice(prefix.length) }
    }
    return null
  }

  async resolve(name: string): Promise<ToolOrigin | null> {
    const hit = this.split(name)
    return hit ? hit.member.source.resolve(hit.tool) : null
  }

  async callTool(ctx: CallContext, name: string, args: Record<string, unknown>): Promise<CallToolResult> {
    const hit = this.split(name)!
    return hit.member.source.callTool(ctx, hit.tool, args)
  }
}
