import type { Snapshot } from '../config/snapshot.ts'
import type { Principal } from '../core/context.ts'
import { GatewayError, GW_ERR } from '../core/errors.ts'
import { IpFilter } from './ip-filter.ts'

type Headers = Readonly<Record<string, string | string[] | undefined>>

/**
 * What a product demands of a caller once it is known: the kind of credential (`auth: key|jwt|any`) and
 * where it calls from (`ipFilter`). IP filters are compiled once per snapshot.
 */
export class Admission {
  private readonly filters = new WeakMap<Snapshot, Map<string, IpFilter | null>>()

  admit(snapshot: Snapshot, principal: Principal, headers: Headers, remoteIp: string | undefined): Principal {
    if (principal.productId === null) return principal
    const product = snapshot.products.get(principal.productId)
    if (!product) return principal
    const via = principal.via ?? 'key'
    if (product.auth !== 'any' && product.auth !== via) {
      throw via === 'jwt'
        ? new GatewayError(GW_ERR.INVALID_TOKEN, 'This product accepts gateway keys, not tokens.')
        : new GatewayError(GW_ERR.INVALID_API_KEY, 'This product accepts tokens (JWT), not gateway keys.')
    }
    const filter = this.filterOf(snapshot, principal.productId)
    if (filter !== null) {
      const ip = filter.clientIp(remoteIp ?? '', headers)
      if (!filter.admits(ip)) throw new GatewayError(GW_ERR.IP_NOT_ALLOWED, 'Calls from this address are not allowed.')
    }
    return principal
  }

  private filterOf(snapshot: Snapshot, productId: string): IpFilter | null {
    let byProduct = this.filters.get(snapshot)
    if (!byProduct) this.filters.set(snapshot, (byProduct = new Map()))
    let f = byProduct.get(productId)
    if (f === undefined) {
      const cfg = snapshot.products.get(productId)?.ipFilter
      f = cfg ? new IpFilter(cfg) : null
      byProduct.set(productId, f)
    }
    return f
  }
}
