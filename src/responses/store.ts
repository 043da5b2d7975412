/**
 * Where the gateway keeps Responses conversations for backends that keep none (Anthropic, Gemini, Bedrock,
 * chat-only servers), and which backend holds the state of a natively served one. One row per response: its own
 * input items and output items (never the whole conversation again), the response it continues, its owner, and
 * when it expires. A conversation is read back as one chain query (a recursive CTE on both engines).
 */
type Json = Record<string, unknown>

export interface StoredResponse {
  readonly id: string
  /** The consumer that created it: nobody else can read, continue or delete it. */
  readonly consumerId: string
  readonly previousId: string | null
  /** Set when a backend that speaks Responses natively served it (and keeps its state): follow-ups go there. */
  readonly backendId: string | null
  readonly model: string
  /** Epoch ms. */
  readonly createdAt: number
  readonly expiresAt: number
  /** This request's own input items (normalised). */
  readonly input: readonly Json[]
  /** The response's output items, as stored (reasoning with its encrypted_content). */
  readonly output: readonly Json[]
  /** The `response` object as GET returns it (output included). */
  readonly response: Json
}

export interface ResponseStore {
  put(r: StoredResponse): Promise<void>
  /** The response, if it exists, is the consumer's and has not expired. */
  get(id: string, consumerId: string, now: number): Promise<StoredResponse | null>
  /**
   * The conversation ending at `id`, oldest first, at most `maxLength` responses (the newest ones). Empty when
   * `id` is not found (or not the consumer's, or expired).
   */
  chain(id: string, consumerId: string, now: number, maxLength: number): Promise<StoredResponse[]>
  delete(id: string, consumerId: string): Promise<boolean>
  /** Deletes expired responses; returns how many. */
  purge(now: number): Promise<number>
  close(): Promise<void>
}

/** The JSON column: what a row carries beyond its indexed fields. */
export interface RowBody { input: readonly Json[]; output: readonly Json[]; response: Json }

export function rowBody(r: StoredResponse): string {
  return JSON.stringify({ input: r.input, output: r.output, response: r.response } satisfies RowBody)
}

/** In-process store (ledger `none`): lost on restart, not shared. */
export class MemoryResponseStore implements ResponseStore {
  private readonly rows = new Map<string, StoredResponse>()

  async put(r: StoredResponse): Promise<void> {
    this.rows.set(r.id, r)
  }

  async get(id: string, consumerId: string, now: number): Promise<StoredResponse | null> {
    const r = this.rows.get(id)
    return r && r.consumerId === consumerId && r.expiresAt > now ? r : null
  }

  async chain(id: string, consumerId: string, now: number, maxLength: number): Promise<StoredResponse[]> {
    const out: StoredResponse[] = []
    let next: string | null = id
    while (next !== null && out.length < maxLength) {
      const r = await this.get(next, consumerId, now)
      if (!r) break
      out.push(r)
      next = r.previousId
    }
    return out.reverse()
  }

  async delete(id: string, consumerId: string): Promise<boolean> {
    const r = this.rows.get(id)
    if (!r || r.consumerId !== consumerId) return false
    return this.rows.delete(id)
  }

  async purge(now: number): Promise<number> {
    let n = 0
    for (const [id, r] of this.rows) if (r.expiresAt <= now && this.rows.delete(id)) n++
    return n
  }

  async close(): Promise<void> {}
}
