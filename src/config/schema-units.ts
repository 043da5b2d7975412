import { z } from 'zod'
import { parseDuration } from '../core/duration.ts'

/** `250ms`, `10s`, `5m`… or a plain number of milliseconds. */
export const duration = z.union([z.number().nonnegative(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v
  const ms = parseDuration(v)
  if (ms === null) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not a duration (use a number with a unit: 250ms, 10s, 5m, 1h, 7d)` })
    return z.NEVER
  }
  return ms
})

const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 }
/** `10MiB`, `512KB`, or a plain number of bytes. */
export const byteSize = z.union([z.number().int().positive(), z.string()]).transform((v, ctx) => {
  if (typeof v === 'number') return v
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]+)$/i.exec(v.trim())
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined
  if (!m || unit === undefined) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not a size (e.g. 10MiB, 512KB, 1048576)` })
    return z.NEVER
  }
  return Math.round(Number(m[1]) * unit)
})

/** A string that may come from `${ENV}`: an all-digit secret parses as a YAML number and is taken back as text. */
export const text = () => z.preprocess((v) => (typeof v === 'number' || typeof v === 'boolean' ? String(v) : v), z.string())
