import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import { GatewayError, GW_ERR } from '../core/errors.ts'
import type { ResponsesConfig } from './config.ts'
import type { ResponseStore, StoredResponse } from './store.ts'

type Json = Record<string, unknown>

/** How long after its creation a response another replica may still be writing is waited for on a miss. */
const SETTLE_WINDOW_MS = 3000
const SETTLE_POLL_MS = 20
/** `resp_` + 12 hex digits of the creation time (ms) + 40 random hex digits. */
const OUR_ID = /^resp_([0-9a-f]{12})[0-9a-f]{40}$/

/** What a previous_response_id continues. */
export type Continuation =
  | { readonly kind: 'gateway'; readonly items: Json[]; readonly chain: readonly StoredResponse[] }
  | { readonly kind: 'native'; readonly backendId: string; readonly record: StoredResponse }

export const previousNotFound = (id: string) =>
  new GatewayError({ status: 400, type: 'invalid_request_error', code: 'previous_response_not_found' }, `Previous response with id '${id.slice(0, 128)}' not found.`, { param: 'previous_response_id' })

/**
 * The gateway's Responses state: ids, writes that never delay an answer yet are found by the very next request,
 * conversations read back by previous_response_id, ownership (a consumer sees only its own), retention.
 *
 * Read-your-writes: a write is started when the answer is complete and runs after it is sent. A follow-up on the
 * same process waits for that pending write; one on another replica that misses a response created in the last
 * few seconds (its id carries its creation time) polls briefly until the write lands. Any other miss is answered
 * at once.
 */
export class ResponsesService {
  private readonly pending = new Map<string, Promise<void>>()
  private readonly purger: NodeJS.Timeout

  constructor(
    private readonly store: ResponseStore,
    private readonly config: () => ResponsesConfig,
    private readonly now: () => number,
    private readonly logger: Logger,
  ) {
    this.purger = setInterval(() => {
      this.store.purge(this.now()).then((n) => { if (n) this.logger.debug({ purged: n }, 'expired responses deleted') }, (err) => this.logger.warn({ err }, 'purging expired responses failed'))
    }, config().purgeInterval).unref()
  }

  newId(): string {
    return `resp_${this.now().toString(16).padStart(12, '0').slice(-12)}${randomBytes(20).toString('hex')}`
  }

  get retention(): number {
    return this.config().retention
  }

  /** Stores a response after the current turn of the event loop (never before the answer is on its way). */
  save(r: StoredResponse): void {
    // Measured and serialised after the answer is sent, never on its path.
    const write = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => {
        const size = JSON.stringify(r.input).length + JSON.stringify(r.response).length
        if (size > this.config().maxStoredBytes) {
          this.logger.warn({ responseId: r.id, bytes: size }, 'response larger than responses.maxStoredBytes: not stored')
          return
        }
        return this.store.put(r)
      })
      .catch((err) => this.logger.warn({ err, responseId: r.id }, 'storing a response failed'))
      .finally(() => { if (this.pending.get(r.id) === write) this.pending.delete(r.id) })
    this.pending.set(r.id, write)
  }

  /** The consumer's response, waiting for its pending or just-made write; null when it does not exist. */
  async find(id: string, consumerId: string): Promise<StoredResponse | null> {
    return this.settled(id, () => this.store.get(id, consumerId, this.now()), (r) => r !== null)
  }

  /** The conversation a previous_response_id continues, or the documented 400 saying why it cannot be. */
  async continuation(id: string, consumerId: string): Promise<Continuation> {
    const max = this.config().maxChainLength
    const chain = await this.settled(id, () => this.store.chain(id, consumerId, this.now(), max + 1), (c) => c.length > 0)
    if (chain.length === 0) throw previousNotFound(id)
    const newest = chain[chain.length - 1]!
    if (newest.backendId !== null) return { kind: 'native', backendId: newest.backendId, record: newest }
    if (chain.length > max) {
      throw new GatewayError(GW_ERR.INVALID_REQUEST, `The conversation of '${id.slice(0, 128)}' is longer than ${max} responses (responses.maxChainLength); start a new one, sending the items you need as input.`, { param: 'previous_response_id' })
    }
    if (chain[0]!.previousId !== null) {
      throw new GatewayError({ status: 400, type: 'invalid_request_error', code: 'previous_response_not_found' },
        `Previous response with id '${id.slice(0, 128)}' cannot be continued: an earlier response of its conversation ('${chain[0]!.previousId.slice(0, 128)}') was deleted or has expired.`, { param: 'previous_response_id' })
    }
    return { kind: 'gateway', items: chain.flatMap((r) => [...r.input, ...r.output]), chain }
  }

  /** Every stored response of the conversation ending at `id` (oldest first), for input_items. */
  async chain(id: string, consumerId: string): Promise<StoredResponse[]> {
    return this.settled(id, () => this.store.chain(id, consumerId, this.now(), this.config().maxChainLength + 1), (c) => c.length > 0)
  }

  async remove(id: string, consumerId: string): Promise<boolean> {
    await this.pending.get(id)
    return this.store.delete(id, consumerId)
  }

  async close(): Promise<void> {
    clearInterval(this.purger)
    await Promise.allSettled([...this.pending.values()])
    await this.store.close()
  }

  private async settled<T>(id: string, read: () => Promise<T>, found: (v: T) => boolean): Promise<T> {
    await this.pending.get(id)
    let v = await read()
    const m = OUR_ID.exec(id)
    if (found(v) || !m) return v
    const until = Number.parseInt(m[1]!, 16) + SETTLE_WINDOW_MS
    // Bounded by count too, so a clock that stands still (tests) cannot make it wait forever.
    for (let polls = 0; !found(v) && this.now() < until && polls < SETTLE_WINDOW_MS / SETTLE_POLL_MS; polls++) {
      await new Promise((r) => setTimeout(r, SETTLE_POLL_MS))
      v = await read()
    }
    return v
  }
}
