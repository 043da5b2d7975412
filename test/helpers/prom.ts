/** One sample of a Prometheus text exposition. */
export interface PromSample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

/** Parses the Prometheus text format (enough of it for tests: no timestamps, simple escapes). */
export function parseProm(text: string): PromSample[] {
  const out: PromSample[] = []
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line)
    if (!m) throw new Error(`unparsable metrics line: ${line}`)
    const labels: Record<string, string> = {}
    if (m[2]) {
      for (const lm of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
        labels[lm[1]!] = lm[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\')
      }
    }
    out.push({ name: m[1]!, labels, value: Number(m[3]) })
  }
  return out
}

/** Sum of every sample called `name` whose labels include `match`. */
export function sumOf(samples: readonly PromSample[], name: string, match: Readonly<Record<string, string>> = {}): number {
  let sum = 0
  for (const s of samples) {
    if (s.name !== name) continue
    if (Object.entries(match).every(([k, v]) => s.labels[k] === v)) sum += s.value
  }
  return sum
}

/** The samples called `name` whose labels include `match`. */
export function samplesOf(samples: readonly PromSample[], name: string, match: Readonly<Record<string, string>> = {}): PromSample[] {
  return samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v))
}

/** Fetches `/metrics` until `ready` holds (recording happens just after each response); throws after `ms`. */
export async function scrapeUntil(adminUrl: string, ready: (s: PromSample[]) => boolean, ms = 5000, headers: Record<string, string> = {}): Promise<PromSample[]> {
  const deadline = Date.now() + ms
  for (;;) {
    const res = await fetch(`${adminUrl}/metrics`, { headers })
    if (res.status !== 200) throw new Error(`/metrics answered ${res.status}: ${await res.text()}`)
    const samples = parseProm(await res.text())
    if (ready(samples)) return samples
    if (Date.now() > deadline) throw new Error(`/metrics never satisfied the condition within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 20))
  }
}
