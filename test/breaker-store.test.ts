import { after, before } from 'node:test'
import { randomBytes } from 'node:crypto'
import pino from 'pino'
import type { Redis } from 'ioredis'
import { breakerStoreContract } from './contract/breaker-store.ts'
import { MemoryBreakerStore } from '../src/stores/memory/breaker.ts'
import { RedisBreakerStore } from '../src/stores/redis/breaker.ts'
import { closeRedis, createRedisClient, waitReady } from '../src/stores/redis/connection.ts'
import { serviceAvailable } from './helpers/gateway.ts'

breakerStoreContract('memory', async () => ({ store: new MemoryBreakerStore() }))

const redisUp = await serviceAvailable('redis')
let client: Redis | null = null
const prefix = `sluice-test-${randomBytes(6).toString('hex')}:`

before(async () => {
  if (!redisUp) return
  client = createRedisClient({ url: 'redis://127.0.0.1:6379', commandTimeout: 2000 }, pino({ level: 'silent' }))
  await waitReady(client, 5000)
})
after(async () => {
  if (!client) return
  const keys = await client.keys(`${prefix}*`)
  if (keys.length) await client.del(...keys)
  await closeRedis(client)
})

let run = 0
breakerStoreContract('redis', async () => ({ store: new RedisBreakerStore(client!, `${prefix}${run++}:`) }), { skip: !redisUp })
