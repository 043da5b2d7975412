/**
 * Cuts a long text into windows of at most `size` characters, each overlapping the previous by `overlap`
 * so a phrase on a boundary is seen whole by one window (Content Safety takes at most 10,000 characters a
 * call). Surrogate pairs are not split.
 */
export function windowsOf(text: string, size: number, overlap: number): string[] {
  return windowRanges(text, size, overlap).map(([s, e]) => text.slice(s, e))
}

/** The [start, end) offsets of each window. */
export function windowRanges(text: string, size: number, overlap: number): Array<[number, number]> {
  if (text.length <= size) return [[0, text.length]]
  const step = Math.max(1, size - Math.min(overlap, size - 1))
  const out: Array<[number, number]> = []
  for (let start = 0; start < text.length; start += step) {
    let s = start
    let e = Math.min(text.length, start + size)
    if (s > 0 && isLowSurrogate(text.charCodeAt(s))) s--
    if (e < text.length && isLowSurrogate(text.charCodeAt(e))) e--
    out.push([s, e])
    if (e >= text.length) break
  }
  return out
}

/** How many windows a text of `length` characters makes. */
export function windowCount(length: number, size: number, overlap: number): number {
  if (length <= size) return 1
  const step = Math.max(1, size - Math.min(overlap, size - 1))
  return Math.ceil((length - size) / step) + 1
}

function isLowSurrogate(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff
}

/** Lets other requests run between windows of a long scan. */
export const yieldToLoop = (): Promise<void> => new Promise((r) => setImmediate(r))
