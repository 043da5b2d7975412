import type { Snapshot } from '../config/snapshot.ts'
import type { Principal } from '../core/context.ts'
import { GatewayError, GW_ERR } from '../core/errors.ts'

const NO_LIMIT = Number.POSITIVE_INFINITY

/**
 * Requests in flight per consumer and per product, in this process. A consumer with a hundred long streams
 * must not take every connection a backend has: past its limit a request is refused (429
 * `too_many_concurrent_requests`) before its body is read. A slot is held from admission until the
 * response has ended (the last byte of a stream) or the connection closed.
 */
export class InflightLimits {
  private readonly byConsumer = new Map<string, number>()
  private readonly byProduct = new Map<string, number>()

  /** Takes a slot for the principal, or throws; the returned function gives it back (once). */
  acquire(snapshot: Snapshot, principal: Principal): () => void {
    const limits = snapshot.config.requestLimits
    const consumerMax = snapshot.consumers.get(principal.consumerId)?.maxInflight ?? limits.maxInflightPerConsumer
    const productId = principal.productId
    const productMax = productId === null ? NO_LIMIT : (snapshot.products.get(productId)?.maxInflight ?? limits.maxInflightPerProduct ?? NO_LIMIT)
    const c = this.byConsumer.get(principal.consumerId) ?? 0
    if (c >= consumerMax) throw refusal(`This key already has ${consumerMax} requests in flight, its limit; retry when one has finished.`)
    const p = productId === null ? 0 : (this.byProduct.get(productId) ?? 0)
    if (p >= productMax) throw refusal(`This key's product already has ${productMax} requests in flight, its limit; retry when one has finished.`)
    this.byConsumer.set(principal.consumerId, c + 1)
    if (productId !== null && productMax !== NO_LIMIT) this.byProduct.set(productId, p + 1)
    const countedProduct = productId !== null && productMax !== NO_LIMIT
    let held = true
    return () => {
      if (!held) return
      held = false
      decrement(this.byConsumer, principal.consumerId)
      if (countedProduct) decrement(this.byProduct, productId)
    }
  }

  /** Requests in flight for a consumer (for tests and the admin view). */
  consumerCount(id: string): number {
    return this.byConsumer.get(id) ?? 0
  }
}

function decrement(m: Map<string, number>, key: string): void {
  const n = (m.get(key) ?? 1) - 1
  // Entries at zero are dropped, so the maps hold only consumers with something in flight.
  if (n <= 0) m.delete(key)
  else m.set(key, n)
}

function refusal(message: string): GatewayError {
  return new GatewayError(GW_ERR.TOO_MANY_CONCURRENT, message, { headers: { 'retry-after': '1' } })
}
