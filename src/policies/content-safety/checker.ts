import type { Logger } from 'pino'
import { GatewayError, GW_ERR } from '../../core/errors.ts'
import type { MetricsSink } from '../../telemetry/sink.ts'
import type { Span } from './detectors.ts'
import { redactSpans } from './detectors.ts'
import type { BuiltinEngine } from './engines/builtin.ts'
import type { Finding, RemoteEngine, TextRole, TextSegment, WindowedText } from './types.ts'
import { windowRanges, yieldToLoop } from './windows.ts'

export interface CheckerOptions {
  readonly builtins: readonly BuiltinEngine[]
  readonly remotes: readonly RemoteEngine[]
  readonly windowSize: number
  readonly windowOverlap: number
  readonly onFailure: 'open' | 'closed'
  readonly timeout: number
  readonly metrics: MetricsSink
  readonly logger: Logger
}

/** Scans this many characters synchronously before letting other requests run (a 10,000-character window takes ~1.5 ms). */
const YIELD_EVERY_CHARS = 10_000

/**
 * Runs every engine of one policy over a set of texts: builtin engines first (they may redact, and the
 * remote engines then see the redacted text), remote engines in parallel, each bounded by the timeout.
 * Long texts go in windows; a long scan yields to the event loop between windows.
 */
export class SafetyChecker {
  constructor(private readonly o: CheckerOptions) {}

  async check(segments: readonly TextSegment[], signal: AbortSignal): Promise<Finding[]> {
    const findings: Finding[] = []
    let sinceYield = 0
    for (const b of this.o.builtins) {
      for (const seg of segments) {
        // The redacted text is built window by window (spans are per window), never in one long pass.
        const chunks: string[] = []
        let parts: string[] = []
        let pos = 0
        let redacted = false
        for (const [start, end] of windowRanges(seg.text, this.o.windowSize, this.o.windowOverlap)) {
          // Yield before a window, not after the last: a prompt of one window is checked without a turn of the loop.
          if (sinceYield >= YIELD_EVERY_CHARS) { sinceYield = 0; await yieldToLoop() }
          const r = b.scan(seg.text.slice(start, end), seg.role)
          findings.push(...r.findings)
          if (r.redact.length) {
            const spans = r.redact.map((x) => ({ start: x.start + start, end: x.end + start, kind: x.kind })).sort((x, y) => x.start - y.start || y.end - x.end)
            for (const sp of spans) {
              if (sp.end <= pos) continue // already replaced (seen again in the overlap)
              // A match touching a window's end may be cut short; the next window (overlapping) sees it whole.
              if (sp.end === end && end < seg.text.length) continue
              if (sp.start < pos) { pos = sp.end; continue } // the rest of one already replaced
              parts.push(seg.text.slice(pos, sp.start), `[REDACTED_${sp.kind.toUpperCase()}]`)
              pos = sp.end
              redacted = true
            }
          }
          if (parts.length) { chunks.push(parts.join('')); parts = [] }
          sinceYield += end - start
        }
        if (redacted) {
          chunks.push(seg.text.slice(pos))
          seg.text = chunks.join('')
          seg.write(seg.text)
          this.o.metrics.contentSafety?.(b.name, 'pii', 'redacted')
        }
      }
    }
    // Builtin findings are final: a blocked prompt is not also sent to a remote service.
    if (!findings.some((f) => f.blocked) && this.o.remotes.length) {
      const windows: WindowedText[] = []
      for (const seg of segments) for (const [s, e] of windowRanges(seg.text, this.o.windowSize, this.o.windowOverlap)) windows.push({ role: seg.role, text: seg.text.slice(s, e) })
      const nonEmpty = windows.filter((w) => w.text.trim() !== '')
      if (nonEmpty.length) {
        const results = await Promise.all(this.o.remotes.map((e) => this.remote(e, nonEmpty, signal)))
        for (const r of results) findings.push(...r)
      }
    }
    for (const f of findings) if (f.blocked) this.o.metrics.contentSafety?.(f.engine, f.category, 'blocked')
    return findings
  }

  /** Builtin redaction only (no blocking decision, no remote call): for held stream windows. */
  redact(text: string): string | null {
    const spans: Span[] = []
    for (const b of this.o.builtins) if (b.redacts) spans.push(...b.scan(text, 'completion').redact)
    return spans.length ? redactSpans(text, spans) : null
  }

  private async remote(engine: RemoteEngine, windows: readonly WindowedText[], signal: AbortSignal): Promise<Finding[]> {
    const bounded = AbortSignal.any([signal, AbortSignal.timeout(this.o.timeout)])
    try {
      return await engine.analyze(windows, bounded)
    } catch (err) {
      if (signal.aborted) throw err // the client went away: not an outage
      this.o.metrics.contentSafety?.(engine.name, 'unavailable', this.o.onFailure === 'open' ? 'failed_open' : 'failed_closed')
      this.o.logger.warn({ engine: engine.name, reason: (err as Error).name === 'TimeoutError' ? 'timeout' : (err as Error).message }, 'content-safety engine unavailable')
      if (this.o.onFailure === 'closed') {
        throw new GatewayError(GW_ERR.SERVICE_UNAVAILABLE, 'The content-safety check is unavailable; the request was not sent. Retry shortly.')
      }
      return []
    }
  }
}

export type { TextRole }
