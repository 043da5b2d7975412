import { Counter, Histogram, type Registry } from 'prom-client'
import { SeriesTable } from '../telemetry/series.ts'

export type ToolCallStatus = 'ok' | 'tool_error' | 'rate_limited' | 'quota_exceeded' | 'bad_gateway' | 'timeout' | 'too_large' | 'invalid' | 'content_filtered' | 'error'

interface CallSeries { readonly labels: Record<string, string>; calls: number; bytesIn: number; bytesOut: number }

/**
 * MCP metrics, registered on the gateway's own Prometheus registry:
 * `sluice_mcp_tool_calls_total{server,tool,status}`, `sluice_mcp_tool_bytes_total{server,tool,direction}` and
 * `sluice_mcp_tool_call_duration_seconds{server}`. Tool names come from upstream servers, so the per-tool
 * series are capped like every other metric (past the cap: one `__overflow__` series).
 */
export class McpMetrics {
  private readonly calls: SeriesTable<CallSeries>
  private readonly duration: Histogram<string> | null

  constructor(registry: Registry | null, maxSeries: number) {
    this.calls = new SeriesTable(['server', 'tool', 'status'], maxSeries, (labels) => ({ labels, calls: 0, bytesIn: 0, bytesOut: 0 }), new Set(['status']))
    const table = this.calls
    if (!registry) {
      this.duration = null
      return
    }
    // A reload must not register the same names twice on one registry.
    const existing = registry.getSingleMetric('sluice_mcp_tool_calls_total')
    if (existing) registry.removeSingleMetric('sluice_mcp_tool_calls_total')
    if (registry.getSingleMetric('sluice_mcp_tool_bytes_total')) registry.removeSingleMetric('sluice_mcp_tool_bytes_total')
    if (registry.getSingleMetric('sluice_mcp_tool_call_duration_seconds')) registry.removeSingleMetric('sluice_mcp_tool_call_duration_seconds')
    new Counter({
      name: 'sluice_mcp_tool_calls_total', help: 'MCP tool calls by the server that defines the tool, the tool and how the call ended.',
      labelNames: ['server', 'tool', 'status'], registers: [registry],
      collect() {
        this.reset()
        for (const s of table.series()) this.inc(s.labels, s.calls)
      },
    })
    new Counter({
      name: 'sluice_mcp_tool_bytes_total', help: 'Bytes of MCP tool arguments (in) and results (out).',
      labelNames: ['server', 'tool', 'direction'], registers: [registry],
      collect() {
        this.reset()
        for (const s of table.series()) {
          this.inc({ server: s.labels.server!, tool: s.labels.tool!, direction: 'in' }, s.bytesIn)
          this.inc({ server: s.labels.server!, tool: s.labels.tool!, direction: 'out' }, s.bytesOut)
        }
      },
    })
    this.duration = new Histogram({
      name: 'sluice_mcp_tool_call_duration_seconds', help: 'Time from a tools/call arriving to its answer, by the server that defines the tool.',
      labelNames: ['server'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60], registers: [registry],
    })
  }

  toolCall(server: string, tool: string, status: ToolCallStatus, seconds: number, bytesIn: number, bytesOut: number): void {
    const s = this.calls.get([server, tool, status])
    s.calls++
    s.bytesIn += bytesIn
    s.bytesOut += bytesOut
    this.duration?.observe({ server: server.slice(0, 128) }, seconds)
  }
}
