import { setFlagsFromString } from 'node:v8'

/**
 * Patterns from the configuration run against client text, so a pattern that backtracks catastrophically
 * would let a client stall the event loop. Two guards:
 *  1. `unsafeReason` refuses, at config load, what is known to explode: a quantified group that itself
 *     contains a quantifier or an alternation (`(a+)+`, `(a|aa)*`, `(\w+\s?)*`), backreferences and
 *     lookarounds (which also have no linear-time execution), and counted repeats above 1000.
 *  2. `enableBacktrackFallback` asks V8 to switch a regexp that still backtracks excessively to its
 *     linear-time engine (`--enable-experimental-regexp-engine-on-excessive-backtracks`): whatever slips
 *     past the static check runs in time linear in the (windowed, bounded) text.
 */
export function unsafeReason(pattern: string): string | null {
  try {
    new RegExp(pattern, 'u')
  } catch (err) {
    return `not a valid regular expression: ${(err as Error).message}`
  }
  if (/\\[1-9]|\\k</.test(pattern)) return 'backreferences are not allowed (they have no linear-time execution)'
  if (/\(\?<?[=!]/.test(pattern)) return 'lookarounds are not allowed (they have no linear-time execution)'
  // One pass over the pattern, tracking per open group whether it holds a quantifier or an alternation.
  const stack: Array<{ risky: boolean }> = [{ risky: false }]
  let inClass = false
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!
    if (c === '\\') { i++; continue }
    if (inClass) { if (c === ']') inClass = false; continue }
    if (c === '[') { inClass = true; continue }
    if (c === '(') { stack.push({ risky: false }); if (pattern[i + 1] === '?') i += pattern[i + 2] === '<' ? 2 : 1; continue }
    if (c === '|') { stack[stack.length - 1]!.risky = true; continue }
    const q = quantifierAt(pattern, i)
    if (q !== null && q.max > 1000 && q.max !== Infinity) return `a counted repeat above 1000 ({${q.min},${q.max}}) is not allowed`
    if (c === ')') {
      const group = stack.pop()
      if (!group || stack.length === 0) return 'unbalanced parentheses'
      const after = quantifierAt(pattern, i + 1)
      if (after !== null && after.max > 1 && group.risky) return 'a repeated group containing a repeat or an alternation can backtrack exponentially (e.g. (a+)+); rewrite it without nesting'
      // A group that is itself repeated (or holds a repeat) makes any group around it risky when repeated.
      if (group.risky || (after !== null && after.max > 1)) stack[stack.length - 1]!.risky = true
      continue
    }
    if (q !== null && q.max > 1) stack[stack.length - 1]!.risky = true
  }
  return null
}

function quantifierAt(p: string, i: number): { min: number; max: number } | null {
  const c = p[i]
  if (c === '*') return { min: 0, max: Infinity }
  if (c === '+') return { min: 1, max: Infinity }
  if (c === '?') return { min: 0, max: 1 }
  if (c === '{') {
    const m = /^\{(\d+)(,(\d*))?\}/.exec(p.slice(i, i + 24))
    if (!m) return null
    const min = Number(m[1])
    return { min, max: m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]) }
  }
  return null
}

let fallbackEnabled = false

export function enableBacktrackFallback(): void {
  if (fallbackEnabled) return
  fallbackEnabled = true
  setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks')
  setFlagsFromString('--regexp-backtracks-before-fallback=50000')
}
