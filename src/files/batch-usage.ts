import { addUsage, usageFromOpenAI, type Usage } from '../core/usage.ts'

/** Longest output line read for usage (a line is one request's whole answer). */
const MAX_LINE_BYTES = 4 * 1024 * 1024

/**
 * Sums the usage of a batch's output file as it streams past: one JSON object per line (OpenAI's batch output
 * format: `{ id, custom_id, response: { status_code, request_id, body }, error }`), each answer's `usage` added
 * under the model its body names. Holds at most one line; a line longer than 4 MiB is skipped and counted.
 */
export class BatchUsageTap {
  readonly byModel = new Map<string, Usage>()
  lines = 0
  skipped = 0
  private parts: Buffer[] = []
  private partBytes = 0
  private overlong = false

  push(chunk: Buffer): void {
    let start = 0
    for (let nl = chunk.indexOf(10, start); nl !== -1; nl = chunk.indexOf(10, start)) {
      this.append(chunk.subarray(start, nl))
      this.line()
      start = nl + 1
    }
    if (start < chunk.length) this.append(chunk.subarray(start))
  }

  end(): void {
    if (this.partBytes > 0 || this.overlong) this.line()
  }

  private append(piece: Buffer): void {
    if (this.overlong) return
    this.partBytes += piece.length
    if (this.partBytes > MAX_LINE_BYTES) {
      this.overlong = true
      this.parts = []
      return
    }
    this.parts.push(Buffer.from(piece))
  }

  private line(): void {
    const overlong = this.overlong
    const text = overlong ? '' : Buffer.concat(this.parts).toString('utf8').trim()
    this.parts = []
    this.partBytes = 0
    this.overlong = false
    if (overlong) { this.skipped++; return }
    if (text === '') return
    this.lines++
    let row: { response?: { status_code?: unknown; body?: { model?: unknown; usage?: unknown } } }
    try {
      row = JSON.parse(text) as typeof row
    } catch {
      this.skipped++
      return
    }
    const body = row?.response?.body
    const usage = usageFromOpenAI(body?.usage)
    if (!usage) return
    const model = typeof body?.model === 'string' ? body.model.slice(0, 256) : ''
    this.byModel.set(model, addUsage(this.byModel.get(model) ?? null, usage)!)
  }
}
