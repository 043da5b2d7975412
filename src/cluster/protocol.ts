/**
 * The messages between the primary and its workers (node:cluster IPC). The primary holds no gateway state:
 * it forks, restarts, forwards signals and relays one kind of request, a fan-out: a worker (the admin
 * worker, for reload and /metrics) or the primary itself asks every ready worker to do one operation and
 * gets every answer back.
 */

/** What a fan-out asks of each worker. */
export type FanoutOp = 'reload' | 'metrics' | 'status'

/** Environment variables the primary gives each worker it forks. */
export const ENV_WORKER_INDEX = 'SLUICE_CLUSTER_WORKER'
export const ENV_CLUSTER_SIZE = 'SLUICE_CLUSTER_SIZE'
/** The admin token the primary generated for this run (a config without admin.token), the same in every worker. */
export const ENV_ADMIN_TOKEN = 'SLUICE_CLUSTER_ADMIN_TOKEN'

/** Whether this process was forked by a Sluice primary (not merely some cluster's worker, e.g. pm2's). */
export function forkedByPrimary(env: Readonly<Record<string, string | undefined>> = process.env): boolean {
  return env[ENV_WORKER_INDEX] !== undefined && env[ENV_WORKER_INDEX] !== ''
}

export interface WorkerStatus {
  readonly index: number
  readonly pid: number
  readonly configVersion: number
  readonly inflight: number
  readonly uptimeSeconds: number
  readonly rssBytes: number
  readonly admin: boolean
}

export interface FanoutAnswer {
  readonly index: number
  readonly pid: number
  readonly ok: boolean
  readonly result?: unknown
  /** A failure: its message, and a refused configuration's problems (to rebuild the ConfigError). */
  readonly error?: { readonly message: string; readonly problems?: unknown; readonly source?: string }
}

export type WorkerMessage =
  | { readonly t: 'sluice:ready'; readonly url: string; readonly adminUrl: string | null }
  | { readonly t: 'sluice:fanout'; readonly id: number; readonly op: FanoutOp }
  | { readonly t: 'sluice:done'; readonly id: number; readonly ok: boolean; readonly result?: unknown; readonly error?: FanoutAnswer['error'] }

export type PrimaryMessage =
  | { readonly t: 'sluice:do'; readonly id: number; readonly op: FanoutOp }
  | { readonly t: 'sluice:fanout-result'; readonly id: number; readonly answers: readonly FanoutAnswer[]; readonly restarts: Readonly<Record<number, number>> }

export function isSluiceMessage(m: unknown): m is { t: string } {
  return typeof m === 'object' && m !== null && typeof (m as { t?: unknown }).t === 'string' && (m as { t: string }).t.startsWith('sluice:')
}

/** The journal slot of worker `index`: its own crash journal in the shared directory, found again after a restart. */
export function workerSlot(index: number, base: string | undefined): string {
  const prefix = base?.trim() ? `${base.trim().slice(0, 24)}-` : ''
  return `${prefix}w${index}`
}
