import { createHmac, randomUUID } from 'node:crypto'
import http from 'node:http'
import https from 'node:https'
import type { LookupFunction } from 'node:net'
import { isIP } from 'node:net'
import type { Logger } from 'pino'
import type { WebhookConfig, WebhookDeliveryConfig } from '../config/schema.ts'
import { AddressGuard } from './address-guard.ts'

/** One event as receivers get it (the JSON body). */
export interface WebhookEvent {
  readonly id: string
  readonly type: string
  readonly time: string
  readonly data: Record<string, unknown>
}

interface Pending {
  readonly hook: WebhookConfig
  readonly event: WebhookEvent
  readonly body: string
  attempt: number
}

const MAX_BACKOFF_MS = 300_000
const RESPONSE_BYTES = 64 * 1024

/**
 * `x-sluice-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, as Stripe-style
 * receivers check it: the timestamp is signed with the body so a captured delivery cannot be replayed later.
 */
export function signWebhook(secret: string, body: string, unixSeconds: number): string {
  const mac = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex')
  return `t=${unixSeconds},v1=${mac}`
}

class PermanentFailure extends Error {}

/**
 * Delivers webhook events off the request path: an in-memory queue, one POST per event and receiver,
 * retried with exponential backoff (jittered) while the receiver fails or is unreachable, until
 * `maxAttempts`. The event id stays the same across retries so receivers can drop duplicates (delivery is
 * at least once). Redirects are not followed and hosts resolving to addresses outside the allowed ranges
 * are never contacted. Timers are unref'd: a pending retry never keeps the process alive.
 */
export class WebhookDispatcher {
  private readonly hooks = new Map<string, WebhookConfig>()
  private readonly guard: AddressGuard
  private readonly timers = new Set<NodeJS.Timeout>()
  private readonly inflight = new Set<Promise<void>>()
  private queued = 0
  private closed = false
  /** Counters for /admin/budgets and tests. */
  readonly stats = { delivered: 0, failedAttempts: 0, dropped: 0, gaveUp: 0 }

  constructor(hooks: readonly WebhookConfig[], private readonly cfg: WebhookDeliveryConfig, private readonly logger: Logger) {
    this.guard = new AddressGuard(cfg.allow)
    this.setHooks(hooks)
  }

  /** A reload may change the receivers; events already queued keep the receiver they were queued for. */
  setHooks(hooks: readonly WebhookConfig[]): void {
    this.hooks.clear()
    for (const h of hooks) this.hooks.set(h.id, h)
  }

  has(id: string): boolean {
    return this.hooks.has(id)
  }

  /** Queues an event for a receiver; returns at once. Unknown receivers and a full queue are logged, never thrown. */
  send(hookId: string, type: string, data: Record<string, unknown>): void {
    const hook = this.hooks.get(hookId)
    if (!hook || this.closed) {
      if (!hook) this.logger.warn({ webhook: hookId, type }, 'webhook: no receiver with this id; event not sent')
      return
    }
    if (this.queued >= this.cfg.maxQueue) {
      this.stats.dropped++
      this.logger.error({ webhook: hookId, type }, 'webhook: delivery queue full; event dropped')
      return
    }
    const event: WebhookEvent = { id: `evt_${randomUUID()}`, type, time: new Date().toISOString(), data }
    this.queued++
    this.attempt({ hook, event, body: JSON.stringify(event), attempt: 0 })
  }

  private attempt(p: Pending): void {
    p.attempt++
    const run = this.post(p).then(
      () => {
        this.queued--
        this.stats.delivered++
        this.logger.info({ webhook: p.hook.id, event: p.event.id, type: p.event.type, attempt: p.attempt }, 'webhook delivered')
      },
      (err: Error) => {
        this.stats.failedAttempts++
        const permanent = err instanceof PermanentFailure
        if (permanent || p.attempt >= this.cfg.maxAttempts || this.closed) {
          this.queued--
          this.stats.gaveUp++
          this.logger.error({ webhook: p.hook.id, event: p.event.id, type: p.event.type, attempts: p.attempt, reason: err.message }, 'webhook delivery failed; giving up')
          return
        }
        const base = Math.min(MAX_BACKOFF_MS, this.cfg.backoff * 2 ** (p.attempt - 1))
        const delay = Math.round(base * (0.75 + Math.random() * 0.5))
        this.logger.warn({ webhook: p.hook.id, event: p.event.id, attempt: p.attempt, retryInMs: delay, reason: err.message }, 'webhook delivery failed; retrying')
        const t = setTimeout(() => { this.timers.delete(t); this.attempt(p) }, delay)
        t.unref()
        this.timers.add(t)
      },
    )
    this.inflight.add(run)
    void run.finally(() => this.inflight.delete(run))
  }

  private async post(p: Pending): Promise<void> {
    const url = new URL(p.hook.url)
    let address: string
    try {
      address = await this.guard.resolve(url)
    } catch (err) {
      // A forbidden address stays forbidden: no retry. A name that does not resolve may come back.
      if (/may not reach/.test((err as Error).message)) throw new PermanentFailure((err as Error).message)
      throw err
    }
    const family = isIP(address) === 6 ? 6 : 4
    // Connect to the address just checked, whatever DNS says a moment later.
    const pinned: LookupFunction = (_host, opts, cb) => {
      if ((opts as { all?: boolean }).all) (cb as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address, family }])
      else cb(null, address, family)
    }
    const ts = Math.floor(Date.now() / 1000)
    const lib = url.protocol === 'https:' ? https : http
    await new Promise<void>((resolve, reject) => {
      const req = lib.request(url, {
        method: 'POST',
        lookup: pinned,
        timeout: this.cfg.timeout,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(p.body),
          'user-agent': 'sluice-webhooks/1',
          'x-sluice-event-id': p.event.id,
          'x-sluice-event-type': p.event.type,
          'x-sluice-signature': signWebhook(p.hook.secret, p.body, ts),
        },
      }, (res) => {
        let seen = 0
        res.on('data', (d: Buffer) => { seen += d.length; if (seen > RESPONSE_BYTES) res.destroy() })
        res.on('error', () => {})
        res.on('end', () => settleStatus(res.statusCode ?? 0))
        res.on('close', () => settleStatus(res.statusCode ?? 0))
      })
      let done = false
      const finish = (err: Error | null) => {
        if (done) return
        done = true
        clearTimeout(deadline)
        if (err) reject(err)
        else resolve()
      }
      const settleStatus = (status: number) => {
        if (status >= 200 && status < 300) finish(null)
        else if (status >= 300 && status < 400) finish(new PermanentFailure(`the receiver answered ${status} (a redirect); redirects are not followed`))
        else if (status >= 400 && status < 500 && status !== 408 && status !== 425 && status !== 429) finish(new PermanentFailure(`the receiver answered ${status}`))
        else finish(new Error(`the receiver answered ${status}`))
      }
      // Headers and body together within the timeout: a receiver that trickles bytes still times out.
      const deadline = setTimeout(() => { req.destroy(new Error(`no answer within ${this.cfg.timeout} ms`)) }, this.cfg.timeout)
      deadline.unref()
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.cfg.timeout} ms`)))
      req.on('error', (err) => finish(err))
      req.end(p.body)
    })
  }

  /** Waits (up to `timeoutMs`) for attempts in flight; retries still scheduled are abandoned and logged. */
  async close(timeoutMs = 2_000): Promise<void> {
    this.closed = true
    for (const t of this.timers) clearTimeout(t)
    if (this.timers.size) this.logger.warn({ pending: this.timers.size }, 'webhook: retries abandoned at shutdown')
    this.timers.clear()
    let timer: NodeJS.Timeout | undefined
    await Promise.race([Promise.allSettled([...this.inflight]), new Promise((r) => { timer = setTimeout(r, timeoutMs) })])
    clearTimeout(timer)
  }
}
