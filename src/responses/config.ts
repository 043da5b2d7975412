import { z } from 'zod'
import { byteSize, duration } from '../config/schema-units.ts'

const DAY = 86_400_000

/** `responses:` — the conversations the gateway keeps for backends without a Responses API of their own. */
export const responsesSection = z.strictObject({
  /** How long a stored response can be read and continued (OpenAI keeps them 30 days). */
  retention: duration.default(30 * DAY),
  /** Most responses one conversation may chain by previous_response_id (a longer one is refused with a 400). */
  maxChainLength: z.number().int().positive().max(10_000).default(200),
  /** Largest stored response (its input and output items); a larger one is answered but not stored (logged). */
  maxStoredBytes: byteSize.default(8 * 1024 * 1024),
  /** How often expired responses are deleted. */
  purgeInterval: duration.default(3_600_000),
}).default({ retention: 30 * DAY, maxChainLength: 200, maxStoredBytes: 8 * 1024 * 1024, purgeInterval: 3_600_000 })

export type ResponsesConfig = z.infer<typeof responsesSection>
