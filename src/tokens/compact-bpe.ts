/**
 * A BPE token counter whose vocabulary lives in three typed arrays instead of JS strings and Maps.
 *
 * gpt-tokenizer keeps an encoding as a Map from each token's text to its rank plus the rank table itself:
 * for o200k_base that is 200k V8 strings and Map entries, ~15 MiB of live heap and ~40 MiB of RSS once
 * built, in every gateway that estimates prompt tokens. Counting needs neither the strings nor the Map:
 * here every token's bytes sit back to back in one buffer (~1.4 MB for o200k_base), found through an
 * open-addressing hash table of ranks (2 MiB), all off the V8 heap. The algorithm is the one tiktoken and
 * gpt-tokenizer run (pre-tokenize with the encoding's split regex, a piece that is a token counts one,
 * otherwise merge its bytes pairwise, lowest rank first); `test/compact-bpe.test.ts` checks its counts
 * against gpt-tokenizer's own encodings. Special tokens are never recognised: `<|endoftext|>` in a prompt
 * is counted as the text it is, as the gateway counts it everywhere.
 */
export class CompactBpe {
  /** Every token's bytes, rank after rank. */
  private readonly bytes: Uint8Array
  /** Rank r's bytes are bytes[offsets[r] .. offsets[r + 1]); a rank missing from the file has none. */
  private readonly offsets: Uint32Array
  /** Open addressing on an FNV-1a hash of a token's bytes: rank + 1, 0 for an empty slot. */
  private readonly slots: Int32Array
  private readonly mask: number
  private readonly encoder = new TextEncoder()
  // Scratch space for one piece, grown when a longer piece comes (pieces are short: the split regex cuts
  // words, and the gateway hands the counter at most 1,024 characters at once).
  private scratch = new Uint8Array(1024)
  private starts = new Int32Array(1025)
  private ranks = new Int32Array(1025)

  /**
   * From a `.tiktoken` file: one `base64 rank` line per token, ranks ascending (holes allowed), as
   * tiktoken publishes them and gpt-tokenizer ships them in `data/`.
   */
  constructor(file: Uint8Array, private readonly split: RegExp) {
    if (!split.global) throw new Error('CompactBpe: the split regex must be global')
    // Parsed in place, twice (sizes, then bytes), so nothing is allocated but the tables themselves: a string
    // per line (400k short-lived strings for o200k_base) grew the heap by ~8 MiB that V8 kept committed.
    let ranks = 0
    let total = 0
    this.eachLine(file, (line, space, rank) => {
      if (rank < ranks) throw new Error(`.tiktoken ranks not ascending at byte ${line}`)
      ranks = rank + 1
      total += base64Length(file, line, space)
    })
    this.bytes = new Uint8Array(total)
    this.offsets = new Uint32Array(ranks + 1)
    let next = 0
    let used = 0
    this.eachLine(file, (line, space, rank) => {
      while (next <= rank) this.offsets[next++] = used
      used = base64Into(file, line, space, this.bytes, used)
    })
    this.offsets[ranks] = used
    let size = 1
    while (size < ranks * 2) size <<= 1
    this.slots = new Int32Array(size)
    this.mask = size - 1
    for (let rank = 0; rank < ranks; rank++) {
      const s = this.offsets[rank]!
      const e = this.offsets[rank + 1]!
      if (e === s) continue
      let slot = hash(this.bytes, s, e) & this.mask
      while (this.slots[slot] !== 0) slot = (slot + 1) & this.mask
      this.slots[slot] = rank + 1
    }
  }

  /** Calls `each` with every non-empty line's start, the space before its rank, and the rank. */
  private eachLine(file: Uint8Array, each: (line: number, space: number, rank: number) => void): void {
    for (let line = 0; line < file.length;) {
      let end = file.indexOf(10, line)
      if (end === -1) end = file.length
      if (end > line) {
        const space = file.indexOf(32, line)
        if (space === -1 || space > end) throw new Error(`malformed .tiktoken line at byte ${line}`)
        each(line, space, decimal(file, space + 1, end))
      }
      line = end + 1
    }
  }

  /** Number of ranks (holes included), i.e. the vocabulary's size without special tokens. */
  get size(): number {
    return this.offsets.length - 1
  }

  /** The rank of a token's bytes, or -1 when they are not one token. */
  rank(bytes: Uint8Array): number {
    return this.rankOf(bytes, 0, bytes.length)
  }

  /** Token count of a text: its pre-tokens, each one token or the length of its byte-pair merge. */
  count(text: string): number {
    const split = this.split
    split.lastIndex = 0
    let total = 0
    for (let m = split.exec(text); m !== null; m = split.exec(text)) {
      const piece = m[0]
      if (piece.length === 0) { split.lastIndex++; continue }
      total += this.countPiece(piece)
    }
    return total
  }

  /** Tokens of one pre-token. */
  private countPiece(piece: string): number {
    const n = this.encode(piece)
    if (n === 1 || this.rankOf(this.scratch, 0, n) >= 0) return 1
    return this.merge(n)
  }

  /** The piece's UTF-8 bytes into scratch (ASCII by hand: nearly every piece); returns their number. */
  private encode(piece: string): number {
    if (this.scratch.length < piece.length * 3) {
      this.scratch = new Uint8Array(piece.length * 3)
      this.starts = new Int32Array(piece.length * 3 + 1)
      this.ranks = new Int32Array(piece.length * 3 + 1)
    }
    const out = this.scratch
    for (let i = 0; i < piece.length; i++) {
      const c = piece.charCodeAt(i)
      if (c > 127) return this.encoder.encodeInto(piece, out).written
      out[i] = c
    }
    return piece.length
  }

  /** Rank of bytes[s..e) of buf, or -1 when they are not a token. */
  private rankOf(buf: Uint8Array, s: number, e: number): number {
    const len = e - s
    const bytes = this.bytes
    for (let slot = hash(buf, s, e) & this.mask; ; slot = (slot + 1) & this.mask) {
      const v = this.slots[slot]!
      if (v === 0) return -1
      const at = this.offsets[v - 1]!
      if (this.offsets[v]! - at !== len) continue
      let i = 0
      while (i < len && bytes[at + i] === buf[s + i]) i++
      if (i === len) return v - 1
    }
  }

  /**
   * Byte-pair merge of scratch[0..n): parts start at every byte; the adjacent pair whose concatenation has
   * the lowest rank is merged until no pair is a token. Returns the number of parts left (tokens).
   */
  private merge(n: number): number {
    const starts = this.starts
    const ranks = this.ranks
    let parts = n + 1 // boundaries, so parts - 1 pieces
    for (let i = 0; i <= n; i++) starts[i] = i
    for (let i = 0; i <= n; i++) ranks[i] = this.pairRank(i, parts)
    while (parts > 1) {
      let lowest = NONE
      let at = -1
      for (let i = 0; i < parts - 1; i++) {
        if (ranks[i]! < lowest) { lowest = ranks[i]!; at = i }
      }
      if (at === -1) break
      // Merge pieces at and at + 1: drop the boundary between them.
      starts.copyWithin(at + 1, at + 2, parts)
      ranks.copyWithin(at, at + 1, parts)
      parts--
      ranks[at] = this.pairRank(at, parts)
      if (at > 0) ranks[at - 1] = this.pairRank(at - 1, parts)
    }
    return parts - 1
  }

  /** Rank of the pieces i and i + 1 joined, NONE when there is no piece i + 1 or the join is no token. */
  private pairRank(i: number, parts: number): number {
    if (i + 2 > parts - 1) return NONE
    const r = this.rankOf(this.scratch, this.starts[i]!, this.starts[i + 2]!)
    return r < 0 ? NONE : r
  }
}

/** The non-negative integer written in ASCII digits at bytes[s..e). */
function decimal(bytes: Uint8Array, s: number, e: number): number {
  if (e <= s) throw new Error('.tiktoken: a line without a rank')
  let n = 0
  for (let i = s; i < e; i++) {
    const d = bytes[i]! - 48
    if (d < 0 || d > 9) {
      if (i === e - 1 && bytes[i] === 13) break // a CRLF line end
      throw new Error('.tiktoken: a rank that is not a number')
    }
    n = n * 10 + d
  }
  return n
}

/** 6-bit value of each base64 letter (standard alphabet), -1 for any other byte. */
const BASE64 = (() => {
  const t = new Int8Array(256).fill(-1)
  const letters = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
  for (let i = 0; i < letters.length; i++) t[letters.charCodeAt(i)] = i
  return t
})()

/** Bytes the base64 text at src[s..e) decodes to. */
function base64Length(src: Uint8Array, s: number, e: number): number {
  while (e > s && src[e - 1] === 61) e--
  return Math.floor(((e - s) * 6) / 8)
}

/**
 * Decodes the base64 text at src[s..e) into out at `at`; returns the end of what was written. By hand
 * because Buffer decodes base64 only from a string, and this runs 200k times on one file.
 */
function base64Into(src: Uint8Array, s: number, e: number, out: Uint8Array, at: number): number {
  let bits = 0
  let n = 0
  for (let i = s; i < e; i++) {
    const c = src[i]!
    if (c === 61) break // '=' padding
    const v = BASE64[c]!
    if (v < 0) throw new Error('.tiktoken: a token that is not base64')
    bits = (bits << 6) | v
    n += 6
    if (n >= 8) {
      n -= 8
      out[at++] = (bits >> n) & 0xff
    }
  }
  return at
}

/** Larger than any rank. */
const NONE = 0x7fffffff

/** 32-bit FNV-1a of bytes[s..e). */
function hash(bytes: Uint8Array, s: number, e: number): number {
  let h = 0x811c9dc5
  for (let i = s; i < e; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193)
  return h >>> 0
}
