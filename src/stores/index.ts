import type { StoreConfig } from '../config/schema.ts'
import type { Stores } from './types.ts'
import { MemoryBreakerStore } from './memory/breaker.ts'

export async function createStores(config: StoreConfig): Promise<Stores> {
  if (config.type === 'memory') {
    return { type: 'memory', breakers: new MemoryBreakerStore(), ping: async () => true, close: async () => {} }
  }
  throw new Error(`store type ${config.type} is not available in this build`)
}
