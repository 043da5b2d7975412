import { z } from 'zod'
import { byteSize, duration } from '../config/schema-units.ts'

export const REALTIME_DEFAULTS = {
  idleTimeout: 300_000,
  maxDuration: 3_600_000,
  maxMessageBytes: 4 * 1024 * 1024,
  connectTimeout: 10_000,
} as const

/**
 * `realtime:` — Realtime WebSocket sessions. A session with no event either way for `idleTimeout` is closed
 * (1001), one older than `maxDuration` too (OpenAI's own cap is 60 minutes, the default); a client message
 * larger than `maxMessageBytes` closes the session with 1009 before it is read whole.
 */
export const realtimeSection = z.strictObject({
  idleTimeout: duration.default(REALTIME_DEFAULTS.idleTimeout),
  maxDuration: duration.default(REALTIME_DEFAULTS.maxDuration),
  maxMessageBytes: byteSize.default(REALTIME_DEFAULTS.maxMessageBytes),
  /** How long the gateway waits for a backend's WebSocket handshake before trying the next member. */
  connectTimeout: duration.default(REALTIME_DEFAULTS.connectTimeout),
}).default({ ...REALTIME_DEFAULTS })

export type RealtimeConfig = z.infer<typeof realtimeSection>
