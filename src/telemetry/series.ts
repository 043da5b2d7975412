/** The label value that stands in for every combination past a metric's series cap. */
export const OVERFLOW = '__overflow__'
/** Label values longer than this are cut: a header-derived dimension must not store megabytes per series. */
export const MAX_LABEL_LENGTH = 128

type Level<N> = Map<string, Level<N> | N>

/**
 * Series of one metric, keyed by their label values, with a hard cap on how many distinct combinations
 * it will ever hold. Lookups walk a tree of Maps (one level per label) so the hot path never builds a key
 * string; past the cap every new combination lands on one shared overflow series, labelled `__overflow__`
 * in all but the `keep` labels (bounded ones such as a token type), so totals stay right while memory
 * stays flat whatever a dimension like a user id does.
 */
export class SeriesTable<N> {
  private readonly root: Level<N> = new Map()
  private readonly overflowed = new Map<string, N>()
  private readonly all: N[] = []
  private size = 0
  /** Recordings that went to the overflow series (what operators alert on). */
  overflowCount = 0

  constructor(
    readonly labelNames: readonly string[],
    private readonly cap: number,
    private readonly make: (labels: Record<string, string>) => N,
    private readonly keep: ReadonlySet<string> = new Set(),
  ) {
    if (labelNames.length === 0) throw new Error('a series table needs at least one label')
  }

  /** The series for these label values (in `labelNames` order), created on first use. */
  get(values: readonly string[]): N {
    let level = this.root
    const last = values.length - 1
    for (let i = 0; i < last; i++) {
      const v = clip(values[i]!)
      let next = level.get(v) as Level<N> | undefined
      if (next === undefined) {
        if (this.size >= this.cap) return this.overflow(values)
        next = new Map()
        level.set(v, next)
      }
      level = next
    }
    const leaf = clip(values[last]!)
    let node = level.get(leaf) as N | undefined
    if (node === undefined) {
      if (this.size >= this.cap) return this.overflow(values)
      node = this.make(this.labelsOf(values, false))
      level.set(leaf, node)
      this.all.push(node)
      this.size++
    }
    return node
  }

  /** Every series, overflow ones included, for a scrape. */
  *series(): IterableIterator<N> {
    yield* this.all
    yield* this.overflowed.values()
  }

  get count(): number {
    return this.size
  }

  /** Forgets every series (a gauge whose subjects went away). */
  clear(): void {
    this.root.clear()
    this.overflowed.clear()
    this.all.length = 0
    this.size = 0
  }

  private overflow(values: readonly string[]): N {
    this.overflowCount++
    // Only the kept (bounded) labels distinguish overflow series, so there are few of them.
    let key = ''
    for (let i = 0; i < values.length; i++) if (this.keep.has(this.labelNames[i]!)) key += values[i] + '\u0000'
    let node = this.overflowed.get(key)
    if (node === undefined) {
      node = this.make(this.labelsOf(values, true))
      this.overflowed.set(key, node)
    }
    return node
  }

  private labelsOf(values: readonly string[], overflow: boolean): Record<string, string> {
    const labels: Record<string, string> = {}
    for (let i = 0; i < this.labelNames.length; i++) {
      const name = this.labelNames[i]!
      labels[name] = overflow && !this.keep.has(name) ? OVERFLOW : clip(values[i] ?? '')
    }
    return labels
  }
}

/** Cuts an over-long label value (checked per request, allocates only when it must). */
export function clip(v: string): string {
  return v.length > MAX_LABEL_LENGTH ? v.slice(0, MAX_LABEL_LENGTH) : v
}
