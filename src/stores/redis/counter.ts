import type { Redis } from 'ioredis'
import type { CounterStore, CounterWindow, ReserveRequest, ReserveResult, SettleRequest, WindowState } from '../counter.ts'
import { COUNTER_LUA } from './counter.lua.ts'
import { hashTag, RedisScript } from './script.ts'

const script = new RedisScript(COUNTER_LUA)

/**
 * Counters shared by every gateway process through Redis: each operation is one server-side Lua call, so
 * reserve/settle are atomic across processes. Keys are `<prefix>lim:{<digest of the counter key>}:…`, the
 * hash tag keeping one counter's windows in one Redis Cluster slot. The caller's `now` is the only time
 * used, so fake clocks work here too. Errors (unreachable, timeout) propagate: the fallback wrapper decides.
 */
export class RedisCounterStore implements CounterStore {
  readonly kind = 'redis' as const

  constructor(private readonly client: Redis, private readonly prefix: string) {}

  async reserve(req: ReserveRequest): Promise<ReserveResult> {
    const reply = await this.run('r', req.key, req.windows, req.now, req.id, req.amount, req.leaseMs)
    return { ok: reply[0] === 1, windows: decode(reply, req.windows) }
  }

  async settle(req: SettleRequest): Promise<void> {
    await this.run('s', req.key, req.windows, req.now, req.id, req.actual, req.reserved)
  }

  async peek(key: string, windows: readonly CounterWindow[], now: number): Promise<WindowState[]> {
    return decode(await this.run('p', key, windows, now, '', 0, 0), windows)
  }

  /** The client belongs to the stores bundle, which closes it. */
  async close(): Promise<void> {}

  /** The Redis keys of one counter's windows (exposed for tests and the admin view). */
  keysOf(key: string, windows: readonly CounterWindow[]): string[] {
    const base = `${this.prefix}lim:${hashTag(key)}`
    return windows.flatMap((w) => (w.kind === 'sliding' ? [`${base}:${w.name}:z`, `${base}:${w.name}:h`] : [`${base}:${w.name}:${w.start}:h`, `${base}:${w.name}:${w.start}:l`]))
  }

  private async run(op: string, key: string, windows: readonly CounterWindow[], now: number, id: string, amount: number, extra: number): Promise<number[]> {
    const args: (string | number)[] = [op, Math.floor(now), id, Math.round(amount), Math.round(extra)]
    for (const w of windows) {
      if (w.kind === 'sliding') args.push('s', w.limit, w.windowMs, 0)
      else args.push('f', w.limit, w.start, w.end)
    }
    return (await script.run(this.client, this.keysOf(key, windows), args)) as number[]
  }
}

function decode(reply: number[], windows: readonly CounterWindow[]): WindowState[] {
  return windows.map((w, i) => {
    const o = 1 + i * 4
    const used = Number(reply[o + 1])
    return {
      name: w.name,
      limit: w.limit,
      used,
      remaining: Math.max(0, w.limit - used),
      resetAt: Number(reply[o + 2]),
      fits: reply[o] === 1,
      retryAfterMs: Number(reply[o + 3]),
    }
  })
}
