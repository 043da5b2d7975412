import type { GatewayConfig, PolicyEntry } from '../config/schema.ts'

type Report = (path: Array<string | number>, message: string) => void

/**
 * What `listen.workers` > 1 requires. Worker processes share nothing in memory, so every piece of state a
 * limit, a budget, a breaker or a cache keeps must live in a shared engine; a configuration that keeps one
 * in process memory would silently admit N times its limit (or cache 1/N of its answers), so it is refused
 * here, at load, with the fix named. (The alternative, counters held by the primary and reached over IPC,
 * would put an IPC round trip on every admitted request and still leave breakers, caches and the ledger
 * per process; a shared Redis already does all of it exactly.)
 */
export function checkWorkersConfig(c: GatewayConfig, report: Report): void {
  const n = c.listen.workers
  if (n <= 1) return
  const why = `listen.workers: ${n} runs ${n} processes that share no memory`
  if (c.store.type === 'memory') {
    report(['store'], `${why}, but store: memory keeps limits, budgets, breakers and caches inside each process, so every limit would admit ${n} times its budget; set store: { type: redis, url: redis://… } (shared by every worker), or run one worker`)
  }
  if (c.ledger.type === 'sqlite' && c.ledger.path === ':memory:') {
    report(['ledger', 'path'], `${why}, but an in-memory SQLite ledger (and its key store) would be a different database in each worker; give the ledger a file path or use PostgreSQL`)
  }
  if (c.ledger.type === 'none') {
    report(['ledger', 'type'], `${why}, but with ledger: none the stored Responses conversations and the owners of files and batches are kept inside each process, so a follow-up or a file served by another worker would not be found; give the ledger a file (sqlite) or use PostgreSQL`)
  }
  const lists: Array<[Array<string | number>, readonly PolicyEntry[]]> = [[['policies'], c.policies]]
  c.products.forEach((p, i) => lists.push([['products', i, 'policies'], p.policies]))
  for (const [base, list] of lists) {
    list.forEach((entry, i) => {
      const [name, options] = Object.entries(entry)[0]!
      const store = (options as { store?: string } | undefined)?.store ?? 'memory'
      if (name === 'cache' && store === 'memory') {
        report([...base, i, name, 'store'], `${why}, but a cache with store: memory would keep a separate cache in each worker (1/${n} of the hits); set store: redis`)
      }
      if (name === 'semantic-cache' && store === 'memory') {
        report([...base, i, name, 'store'], `${why}, but a semantic cache with store: memory would keep a separate index in each worker; set store: postgres`)
      }
    })
  }
}
