import { breakerStoreContract } from './contract/breaker-store.ts'
import { MemoryBreakerStore } from '../src/stores/memory/breaker.ts'

breakerStoreContract('memory', async () => ({ store: new MemoryBreakerStore() }))
