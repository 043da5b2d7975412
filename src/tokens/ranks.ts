import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

/**
 * An encoding's mergeable ranks (index = rank; a token's text, or its bytes when they are not valid UTF-8),
 * read from the `.tiktoken` file gpt-tokenizer ships (`data/<name>.tiktoken`, one `base64 rank` per line).
 * The same table as the package's generated `bpeRanks/<name>.js`, built the way its codegen builds that
 * file (src/codegen/generateJsBpe.ts), but without parsing and compiling a 2.4 MB array literal: V8 keeps
 * the parser's and the literal's memory long after the module ran (measured on o200k_base, idle process:
 * +65 MiB RSS through the literal, +45 MiB through this, for the same 17 MiB of live heap).
 */
export function tiktokenRanks(name: string): Array<string | number[]> {
  const file = readFileSync(require.resolve(`gpt-tokenizer/data/${name}.tiktoken`))
  const utf8 = new TextDecoder('utf-8', { fatal: true })
  const ranks: Array<string | number[]> = []
  let start = 0
  while (start < file.length) {
    let end = file.indexOf(10, start)
    if (end === -1) end = file.length
    const space = file.indexOf(32, start)
    if (space === -1 || space > end) throw new Error(`${name}.tiktoken: malformed line at byte ${start}`)
    const bytes = Buffer.from(file.toString('latin1', start, space), 'base64')
    const rank = Number(file.toString('latin1', space + 1, end))
    // Ranks missing from the file are holes, filled as the codegen fills them.
    while (ranks.length < rank) ranks.push('')
    ranks.push(asText(utf8, bytes) ?? Array.from(bytes))
    start = end + 1
  }
  return ranks
}

/** The bytes as a string when they are UTF-8 that encodes back to the same length (the codegen's test). */
function asText(utf8: TextDecoder, bytes: Buffer): string | undefined {
  try {
    const text = utf8.decode(bytes)
    return Buffer.byteLength(text) === bytes.length ? text : undefined
  } catch {
    return undefined
  }
}
