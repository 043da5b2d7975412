/**
 * Client-chosen strings are cut before they reach a record, a label, a log line or an error message:
 * a 5 MiB model name must cost what a 5-character one does.
 */

/** The model recorded (ledger, logs, metrics) for a name nobody configured: the client's free text is never stored. */
export const UNKNOWN_MODEL = '__unknown__'

/** Longest client-chosen text quoted in an error message. */
export const MAX_QUOTED = 64

/** `text` cut to `max` characters, with an ellipsis when it was cut (never splitting a surrogate pair). */
export function clipText(text: string, max = MAX_QUOTED): string {
  if (text.length <= max) return text
  let end = max
  const c = text.charCodeAt(end - 1)
  if (c >= 0xd800 && c <= 0xdbff) end--
  return text.slice(0, end) + '…'
}
