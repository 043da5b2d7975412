import type { ModelPrice } from '../pricing/prices.ts'

/** A consumer refused with 403 `consumer_suspended` until `until` (epoch ms; null: until an admin reinstates it). */
export interface Suspension {
  readonly consumerId: string
  readonly until: number | null
  readonly reason: string
  /** Who suspended it: `admin:<actor>` or `policy:budget`. */
  readonly by: string
  readonly at: number
}

/** What policies may do to consumers (the budget policy's `onExceeded: suspend`). */
export interface ConsumerControl {
  /** The suspension in force for a consumer now, or null. Synchronous: it is read on every request. */
  suspension(consumerId: string, now: number): Suspension | null
  suspend(s: Suspension, actor: string): Promise<void>
}

/** The price of a public model, served by a backend (null: not dispatched yet, any backend's deployment name). */
export type PriceLookup = (model: string, backendId: string | null) => ModelPrice | null
