/**
 * Deterministic text / embedding generation and token helpers for the mock LLM.
 *
 * Generated text is built from a fixed list of pieces, each of which is exactly one
 * o200k_base token (verified at module load) and is its own pre-tokenisation chunk
 * (" word", "." or ","), so `encode(generatedText).length === number of pieces emitted`
 * for every start offset and length. Output is never re-tokenized.
 */
import { countO200k } from '../tokens/count.ts';

const PARAGRAPH =
  'The river moves slowly through the green valley, and the morning light falls on the quiet water. ' +
  'A small boat waits near the old stone bridge, while birds sing in the tall trees above the bank. ' +
  'People walk along the path to the market, where fresh bread and warm tea are sold at every corner. ' +
  'In the afternoon, the wind turns cool and the clouds gather over the distant hills. ' +
  'Children play by the shore, and their laughter carries across the open field. ' +
  'When the sun goes down, the lamps are lit one by one, and the town settles into a calm and gentle night. ' +
  'Tomorrow the river will still be there, patient and bright, ready to carry the day forward once more.';

/**
 * Pre-decoded token strings, one o200k_base token each, in paragraph order. Every word piece has
 * its leading space (also the first one, so the text wraps around as "... more. The river ...").
 */
export const PIECES: readonly string[] = (' ' + PARAGRAPH).match(/ ?[A-Za-z]+|[.,]/g) ?? [];
/** JSON string literals of PIECES (precomputed so streaming never calls JSON.stringify per token). */
export const PIECES_JSON: readonly string[] = PIECES.map((p) => JSON.stringify(p));
/** Indices of sentence starts; a completion always starts at one of them (without its leading space). */
export const SENTENCE_STARTS: readonly number[] = PIECES.flatMap((p, i) =>
  i === 0 || PIECES[i - 1] === '.' ? [i] : [],
);
const STARTS_TEXT: readonly string[] = SENTENCE_STARTS.map((i) => PIECES[i]!.trimStart());
const STARTS_JSON: readonly string[] = STARTS_TEXT.map((s) => JSON.stringify(s));

/** Token count of plain text with the o200k_base tokenizer (special-token strings count as text, never throw). */
export function countTextTokens(text: string): number {
  if (!text) return 0;
  return countO200k(text);
}

const countText = countTextTokens;

// Sanity check at load: every piece must be exactly one token.
for (const p of [...PIECES, ...STARTS_TEXT]) {
  if (countTextTokens(p) !== 1) throw new Error(`mock text piece ${JSON.stringify(p)} is not a single token`);
}

/** A deterministic completion: `count` tokens starting at sentence number `sentence`. */
export interface Completion {
  start: number; // index into PIECES of the first token
  count: number;
}

export function makeCompletion(seed: number, choice: number, count: number): Completion {
  const s = (seed + choice * 3) % SENTENCE_STARTS.length;
  return { start: s, count };
}

/** Text of token `i` (0-based) of a completion. */
export function pieceText(c: Completion, i: number): string {
  return i === 0 ? STARTS_TEXT[c.start]! : PIECES[(SENTENCE_STARTS[c.start]! + i) % PIECES.length]!;
}

/** JSON literal of token `i` of a completion. */
export function pieceJson(c: Completion, i: number): string {
  return i === 0 ? STARTS_JSON[c.start]! : PIECES_JSON[(SENTENCE_STARTS[c.start]! + i) % PIECES.length]!;
}

/** Full text of a completion. */
export function completionText(c: Completion): string {
  let s = '';
  for (let i = 0; i < c.count; i++) s += pieceText(c, i);
  return s;
}

/** 32-bit FNV-1a hash of a string. */
export function fnv1a(str: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < str.length; i++) {
    h ^= str.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Prompt token counting
// ---------------------------------------------------------------------------------------------

/**
 * Chat prompt tokens, OpenAI cookbook formula for gpt-4o / o200k_base ("How to count tokens with
 * tiktoken"): every message costs 3 tokens + tokens(role) + tokens(content) (+ tokens(name) + 1
 * when `name` is set), and the reply is primed with 3 more tokens.
 * Content arrays: text parts are tokenized, each image part counts a flat 85 tokens.
 * Assistant tool_calls count tokens(name) + tokens(arguments); `tools` definitions count
 * tokens(JSON.stringify(tools)) (an approximation; OpenAI's internal rendering is not public).
 */
export function countChatPromptTokens(messages: readonly unknown[], tools?: unknown, countTextTokens: (text: string) => number = countText): number {
  let total = 3;
  for (const m of messages) {
    total += 3;
    if (!m || typeof m !== 'object') continue;
    const msg = m as Record<string, unknown>;
    if (typeof msg.role === 'string') total += countTextTokens(msg.role);
    total += countContentTokens(msg.content, countTextTokens);
    if (typeof msg.name === 'string') total += countTextTokens(msg.name) + 1;
    if (Array.isArray(msg.tool_calls)) {
      for (const tc of msg.tool_calls as Array<Record<string, any>>) {
        const fn = tc?.function;
        if (fn) total += countTextTokens(String(fn.name ?? '')) + countTextTokens(String(fn.arguments ?? ''));
      }
    }
  }
  if (Array.isArray(tools) && tools.length > 0) total += countTextTokens(JSON.stringify(tools));
  return total;
}

/** Tokens of a message content: string, or array of parts ({type:'text'|'input_text'|'output_text', text}). */
export function countContentTokens(content: unknown, countTextTokens: (text: string) => number = countText): number {
  if (typeof content === 'string') return countTextTokens(content);
  if (!Array.isArray(content)) return 0;
  let n = 0;
  for (const part of content) {
    if (typeof part === 'string') n += countTextTokens(part);
    else if (part && typeof part === 'object') {
      const p = part as Record<string, unknown>;
      if (typeof p.text === 'string') n += countTextTokens(p.text);
      else if (p.type === 'image_url' || p.type === 'input_image') n += 85;
    }
  }
  return n;
}

/** Concatenated text of messages, used as the deterministic seed for the generated answer. */
export function promptSeedText(messages: readonly unknown[]): string {
  let s = '';
  for (const m of messages) {
    if (!m || typeof m !== 'object') continue;
    const msg = m as Record<string, unknown>;
    s += String(msg.role ?? '') + '\u0000';
    const c = msg.content;
    if (typeof c === 'string') s += c;
    else if (Array.isArray(c)) for (const p of c) if (p && typeof p === 'object' && typeof (p as any).text === 'string') s += (p as any).text;
    s += '\u0001';
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Embeddings: feature hashing
// ---------------------------------------------------------------------------------------------

const STOPWORDS = new Set(
  'a an the and or but of to in on at by for with from is are was were be been it its this that as into over under than then there their'.split(
    ' ',
  ),
);
const WORD_RE = /[\p{L}\p{N}]+/gu;

function addFeature(v: Float32Array, feature: string, weight: number): void {
  const h = fnv1a(feature);
  const bucket = h % v.length;
  const sign = (fnv1a(feature, 0x9747b28c) & 1) === 0 ? 1 : -1;
  v[bucket] += sign * weight;
}

/**
 * Deterministic, semantically meaningful-ish embedding: lowercased word unigrams (stop-words
 * down-weighted) and word bigrams hashed into `dims` buckets with ±1 signs, summed, L2-normalised.
 * Texts sharing words are close, unrelated texts are near-orthogonal. Token-array inputs hash the ids.
 */
export function embed(input: string | readonly number[], dims: number): Float32Array {
  const v = new Float32Array(dims);
  let words: string[];
  if (typeof input === 'string') words = input.toLowerCase().match(WORD_RE) ?? [];
  else words = input.map((t) => '#' + t);
  let prev = '';
  for (const w of words) {
    addFeature(v, 'u:' + w, STOPWORDS.has(w) ? 0.25 : 1);
    if (prev) addFeature(v, 'b:' + prev + ' ' + w, 0.5);
    prev = w;
  }
  let norm = 0;
  for (let i = 0; i < dims; i++) norm += v[i] * v[i];
  if (norm === 0) {
    // Empty input: a fixed unit vector so the result is still normalised.
    v[0] = 1;
    return v;
  }
  const inv = 1 / Math.sqrt(norm);
  for (let i = 0; i < dims; i++) v[i] *= inv;
  return v;
}

/** Float32 little-endian bytes, base64 — what OpenAI returns for `encoding_format: "base64"`. */
export function embeddingToBase64(v: Float32Array): string {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
}
