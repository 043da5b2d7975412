import type { Policy } from '../../core/pipeline.ts'
import type { Finding, TextSegment } from './types.ts'

/**
 * The content-safety policy's checker offered to traffic that is not a model request (MCP tool arguments
 * and results): the same engines, thresholds, redaction, windows and failure mode as the policy's own
 * checks. `screen` rewrites redacted segments in place and returns the findings (the caller decides what a
 * block means in its protocol); it throws a GatewayError when the text is longer than the policy checks
 * (413) or an engine is unavailable under `onFailure: closed` (503).
 */
export interface ContentScreen {
  screen(segments: TextSegment[], signal: AbortSignal): Promise<Finding[]>
}

export interface ScreeningPolicy extends Policy {
  readonly contentScreen: ContentScreen
}

export function isScreeningPolicy(p: Policy): p is ScreeningPolicy {
  return typeof (p as Partial<ScreeningPolicy>).contentScreen?.screen === 'function'
}
