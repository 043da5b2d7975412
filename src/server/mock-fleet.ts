import type { BackendConfig } from '../config/schema.ts'
import type { MockOptions, MockServer } from '../mock/llm.ts'

/**
 * The in-process mock backends: each `type: mock` backend without a url gets its own simulated LLM on an
 * ephemeral loopback port, so it is reached through the same upstream path as any real provider.
 */
export class MockFleet {
  private readonly servers = new Map<string, { key: string; server: MockServer }>()

  /** Starts servers for new or changed mock backends, stops those no longer configured. */
  async sync(backends: readonly BackendConfig[]): Promise<void> {
    const wanted = new Map<string, MockOptions>()
    for (const b of backends) if (b.type === 'mock' && !b.url) wanted.set(b.id, optionsOf(b))
    for (const [id, entry] of this.servers) {
      const opts = wanted.get(id)
      if (!opts || JSON.stringify(opts) !== entry.key) {
        this.servers.delete(id)
        // Give requests in flight on the old server time to finish before it goes.
        setTimeout(() => void entry.server.close().catch(() => {}), 30_000).unref()
      }
    }
    for (const [id, opts] of wanted) {
      if (this.servers.has(id)) continue
      // Loaded on demand: a gateway with no mock backend never pays for the simulator (or its tokenizer).
      const { startMockServer } = await import('../mock/llm.ts')
      const server = await startMockServer({ ...opts, port: 0, host: '127.0.0.1' })
      this.servers.set(id, { key: JSON.stringify(opts), server })
    }
  }

  urlOf(backendId: string): string | undefined {
    return this.servers.get(backendId)?.server.url
  }

  server(backendId: string): MockServer | undefined {
    return this.servers.get(backendId)?.server
  }

  async close(): Promise<void> {
    const all = [...this.servers.values()]
    this.servers.clear()
    await Promise.allSettled(all.map((e) => e.server.close()))
  }
}

function optionsOf(b: BackendConfig): MockOptions {
  const o: MockOptions = {}
  if (b.latency !== undefined) o.latencyMs = b.latency
  if (b.ttft !== undefined) o.ttftMs = b.ttft
  if (b.tokensPerSecond !== undefined) o.tokensPerSecond = b.tokensPerSecond
  if (b.failRate !== undefined) o.failRate = b.failRate
  if (b.failStatus !== undefined) o.failStatus = b.failStatus
  if (b.retryAfter !== undefined) o.retryAfterSeconds = b.retryAfter / 1000
  if (b.completionTokens !== undefined) o.completionTokens = b.completionTokens
  return o
}
