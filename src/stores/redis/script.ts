import { createHash } from 'node:crypto'
import type { Redis } from 'ioredis'

/**
 * A Lua script run with EVALSHA (only the digest travels), falling back to EVAL when the server does not
 * know it yet (NOSCRIPT: first use, a restart, a SCRIPT FLUSH or a failover). EVAL also caches it, so the
 * next call is an EVALSHA again.
 */
export class RedisScript {
  readonly sha: string

  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex')
  }

  async run(client: Redis, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await client.evalsha(this.sha, keys.length, ...keys, ...args)
    } catch (err) {
      if (!String((err as Error).message).includes('NOSCRIPT')) throw err
      return client.eval(this.source, keys.length, ...keys, ...args)
    }
  }
}

/**
 * A compact key for arbitrary text: a 64-bit digest in a hash tag, so user data never lands in key names
 * and every key derived from one identity sits in the same Redis Cluster slot.
 */
export function hashTag(identity: string): string {
  return `{${createHash('sha1').update(identity).digest('hex').slice(0, 16)}}`
}
