import type { RequestContext } from '../core/context.ts'
import { GatewayError, GW_ERR } from '../core/errors.ts'
import type { Policy } from '../core/pipeline.ts'
import type { Clock } from '../core/clock.ts'
import type { ConsumerControl } from './types.ts'

/**
 * Runs first on every request: a suspended consumer is refused with 403 `consumer_suspended` before any
 * limit reserves anything. A synchronous map lookup (the directory keeps suspensions in memory, in step
 * with the other replicas), so it costs nothing measurable.
 */
export function suspensionCheck(control: ConsumerControl, clock: Clock): Policy {
  return {
    name: 'consumer-suspension',
    inbound(ctx: RequestContext): void {
      const id = ctx.principal?.consumerId
      if (id === undefined) return
      const s = control.suspension(id, clock.now())
      if (s === null) return
      const until = s.until === null ? 'until an admin reinstates it' : `until ${new Date(s.until).toISOString()}`
      throw new GatewayError(GW_ERR.CONSUMER_SUSPENDED, `This consumer is suspended ${until}: ${s.reason}.`, {
        headers: s.until === null ? {} : { 'x-sluice-suspended-until': new Date(s.until).toISOString() },
      })
    },
  }
}
