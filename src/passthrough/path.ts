/**
 * Why a sub-path under a passthrough prefix is refused, or null when it is forwarded. The check runs on the
 * path exactly as received (still percent-encoded) and nothing is ever normalised: a `.` or `..` segment, an
 * encoded dot, slash or backslash (`%2e`, `%2f`, `%5c`), a backslash, a NUL or a control character could be
 * resolved by some hop into a path outside the prefix, so such a request is refused (400), never rewritten.
 */
export function unsafeSubPath(rest: string): string | null {
  if (rest !== '' && !rest.startsWith('/')) return 'it does not start with "/"'
  if (/%(2e|2f|5c|00)/i.test(rest)) return 'it has an encoded ".", "/", "\\" or NUL'
  // eslint-disable-next-line no-control-regex
  if (/[\\\u0000-\u001f\u007f]/.test(rest)) return 'it has a backslash or a control character'
  for (const seg of rest.split('/')) if (seg === '.' || seg === '..') return 'it has a "." or ".." segment'
  return null
}
