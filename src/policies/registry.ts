import { registryOf, type PolicyRegistry } from './types.ts'
import { emitTokenMetricPolicy } from './emit-token-metric/index.ts'
import { logMessages } from './log-messages/index.ts'
import { exactCachePolicy } from './cache/index.ts'
import { semanticCachePolicy } from './semantic-cache/index.ts'
import { rateLimitPolicy } from './rate-limit/index.ts'
import { tokenLimitPolicy } from './token-limit/index.ts'
import { contentSafetyPolicy } from './content-safety/index.ts'
import { budgetPolicy } from './budget/index.ts'

/** Every policy this build ships, by its contract name. */
export function builtinPolicies(): PolicyRegistry {
  return registryOf([tokenLimitPolicy, rateLimitPolicy, emitTokenMetricPolicy, logMessages, exactCachePolicy, semanticCachePolicy, contentSafetyPolicy, budgetPolicy])
}
