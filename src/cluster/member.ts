import type { FastifyInstance } from 'fastify'
import { AggregatorRegistry } from 'prom-client'
import { ConfigError, type ConfigProblem } from '../config/load.ts'
import { GatewayError, GW_ERR } from '../core/errors.ts'
import {
  ENV_CLUSTER_SIZE, ENV_WORKER_INDEX, isSluiceMessage,
  type FanoutAnswer, type FanoutOp, type PrimaryMessage, type WorkerMessage, type WorkerStatus,
} from './protocol.ts'

/** What a worker exposes to the fan-outs the primary relays. */
export interface WorkerHandlers {
  reload(): Promise<number>
  metrics(): Promise<object[]>
  status(): WorkerStatus
}

/** The part of a cluster worker the gateway itself uses (GatewayOptions.cluster). */
export interface ClusterPlane {
  /** Worker 0 serves the admin plane; the others leave the admin port alone. */
  readonly servesAdmin: boolean
  /** Reloads every worker; resolves with this worker's new version, or throws as a single reload would. */
  reloadEverywhere(): Promise<number>
  /** `/metrics` over every worker: prom-client's cluster aggregation (counters and histograms summed). */
  metricsText(): Promise<{ contentType: string; text: string }>
  /** `x-sluice-worker` on every data-plane answer, and `GET /admin/workers` on the admin plane. */
  register(app: FastifyInstance, admin: FastifyInstance): void
}

/** Longest this worker waits for the primary's fan-out answer (the primary bounds each worker's share). */
const FANOUT_WAIT_MS = 20_000

/**
 * One worker's end of the cluster IPC: answers the primary's `sluice:do` requests with the gateway's own
 * handlers, and asks the primary to fan an operation out to every worker.
 */
export class ClusterMember implements ClusterPlane {
  readonly index: number
  readonly size: number
  private handlers: WorkerHandlers | null = null
  private readonly waiting = new Map<number, { resolve: (m: Extract<PrimaryMessage, { t: 'sluice:fanout-result' }>) => void; timer: NodeJS.Timeout }>()
  private nextId = 1

  constructor(private readonly proc: NodeJS.Process = process) {
    this.index = Number(proc.env[ENV_WORKER_INDEX])
    this.size = Number(proc.env[ENV_CLUSTER_SIZE])
    proc.on('message', (m: unknown) => { if (isSluiceMessage(m)) void this.onMessage(m as PrimaryMessage) })
  }

  get servesAdmin(): boolean {
    return this.index === 0
  }

  serve(handlers: WorkerHandlers): void {
    this.handlers = handlers
  }

  ready(url: string, adminUrl: string | null): void {
    this.post({ t: 'sluice:ready', url, adminUrl })
  }

  async reloadEverywhere(): Promise<number> {
    const { answers } = await this.fanout('reload')
    const mine = answers.find((a) => a.index === this.index)
    const failed = answers.filter((a) => !a.ok)
    if (failed.length === 0 && mine?.ok) return mine.result as number
    // Every worker reads the same file, so a refused configuration is refused by all: answer it as one.
    const refused = failed.find((a) => a.error?.problems)
    if (refused && failed.length === answers.length) throw new ConfigError(refused.error!.problems as ConfigProblem[], refused.error!.source)
    const ok = answers.filter((a) => a.ok).map((a) => a.index)
    throw new GatewayError(GW_ERR.INTERNAL, `The reload did not complete on every worker (reloaded: ${ok.join(', ') || 'none'}; failed: ${failed.map((a) => `${a.index}: ${a.error?.message.split('\n')[0] ?? 'error'}`).join('; ')}).`)
  }

  async metricsText(): Promise<{ contentType: string; text: string }> {
    const { answers } = await this.fanout('metrics')
    const missing = answers.filter((a) => !a.ok)
    // A partial scrape would read as counters going backwards: fail the scrape instead (Prometheus retries).
    if (missing.length) throw new GatewayError(GW_ERR.SERVICE_UNAVAILABLE, `Metrics could not be collected from worker ${missing.map((a) => a.index).join(', ')}.`)
    const registry = AggregatorRegistry.aggregate(answers.map((a) => a.result as object[]))
    return { contentType: registry.contentType, text: await registry.metrics() }
  }

  async workers(): Promise<{ workers: Array<WorkerStatus & { restarts: number }>; missing: number[] }> {
    const { answers, restarts } = await this.fanout('status')
    return {
      workers: answers.filter((a) => a.ok).map((a) => ({ ...(a.result as WorkerStatus), restarts: restarts[a.index] ?? 0 })),
      missing: Array.from({ length: this.size }, (_, i) => i).filter((i) => !answers.some((a) => a.ok && a.index === i)),
    }
  }

  register(app: FastifyInstance, admin: FastifyInstance): void {
    const index = String(this.index)
    // On the raw response, so streamed answers (written with writeHead, past fastify's reply) carry it too.
    app.addHook('onRequest', (_req, reply, done) => {
      reply.raw.setHeader('x-sluice-worker', index)
      done()
    })
    admin.get('/admin/workers', async () => ({ size: this.size, primaryPid: this.proc.ppid, ...(await this.workers()) }))
  }

  private fanout(op: FanoutOp): Promise<Extract<PrimaryMessage, { t: 'sluice:fanout-result' }>> {
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id)
        reject(new GatewayError(GW_ERR.SERVICE_UNAVAILABLE, 'The cluster primary did not answer.'))
      }, FANOUT_WAIT_MS)
      this.waiting.set(id, { resolve, timer })
      this.post({ t: 'sluice:fanout', id, op })
    })
  }

  private async onMessage(m: PrimaryMessage): Promise<void> {
    if (m.t === 'sluice:fanout-result') {
      const w = this.waiting.get(m.id)
      if (!w) return
      clearTimeout(w.timer)
      this.waiting.delete(m.id)
      w.resolve(m)
      return
    }
    if (m.t !== 'sluice:do') return
    const h = this.handlers
    try {
      if (!h) throw new Error('this worker is still starting')
      const result = m.op === 'reload' ? await h.reload() : m.op === 'metrics' ? await h.metrics() : h.status()
      this.post({ t: 'sluice:done', id: m.id, ok: true, result })
    } catch (err) {
      const e = err as Error
      const error: FanoutAnswer['error'] = err instanceof ConfigError
        ? { message: e.message, problems: err.problems, source: sourceOf(e.message) }
        : { message: e.message || 'error' }
      this.post({ t: 'sluice:done', id: m.id, ok: false, error })
    }
  }

  private post(m: WorkerMessage): void {
    if (this.proc.connected && this.proc.send) this.proc.send(m)
  }
}

/** The "FILE" of a ConfigError's "FILE is invalid:" first line. */
function sourceOf(message: string): string {
  const first = message.split('\n')[0] ?? ''
  return first.endsWith(' is invalid:') ? first.slice(0, -' is invalid:'.length) : 'configuration'
}
