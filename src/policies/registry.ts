import { registryOf, type PolicyRegistry } from './types.ts'

/** Every policy this build ships, by its contract name. */
export function builtinPolicies(): PolicyRegistry {
  return registryOf([])
}
