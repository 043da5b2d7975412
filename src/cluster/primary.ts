import cluster, { type Worker } from 'node:cluster'
import {
  ENV_ADMIN_TOKEN, ENV_CLUSTER_SIZE, ENV_WORKER_INDEX, isSluiceMessage, workerSlot,
  type FanoutAnswer, type FanoutOp, type PrimaryMessage, type WorkerMessage,
} from './protocol.ts'

export interface PrimaryOptions {
  readonly workers: number
  /** listen.shutdownGrace: how long SIGTERM lets every worker drain before it is killed. */
  readonly shutdownGrace: number
  /** Set when the primary generated the admin token for this run: handed to every worker. */
  readonly adminToken: string | null
  /** "with FILE" in the start-up line. */
  readonly source: string
  readonly out: NodeJS.WritableStream
  readonly err: NodeJS.WritableStream
  /** Ends the process (tests of the module never run it; the CLI passes process.exit). */
  readonly exit: (code: number) => void
}

/** Restart delays after a crash: doubling from the first, capped; reset once a worker has lived a while. */
const FIRST_RESTART_MS = 250
const MAX_RESTART_MS = 30_000
const HEALTHY_AFTER_MS = 30_000
/** Longest a fan-out waits for one worker's answer (a reload builds every policy; /metrics collects). */
const FANOUT_TIMEOUT_MS = 15_000
/** Past shutdownGrace, a worker still draining its ledger gets this long before it is killed. */
const EXIT_MARGIN_MS = 10_000

interface Slot {
  readonly index: number
  worker: Worker | null
  ready: boolean
  forkedAt: number
  readyAt: number
  restarts: number
  /** Crashes in a row (each shortly after the last start): drives the backoff. */
  crashes: number
  restartTimer: NodeJS.Timeout | null
  url: string | null
  adminUrl: string | null
}

interface Pending {
  readonly answers: FanoutAnswer[]
  readonly waiting: Map<number, Slot>
  readonly done: (answers: FanoutAnswer[]) => void
  readonly timer: NodeJS.Timeout
}

/**
 * The primary of `listen.workers` > 1: forks one worker per slot (each a whole gateway; node:cluster shares
 * the listening port between them, the admin port is listened on by worker 0 alone), restarts a crashed one
 * with backoff, relays fan-outs (reload, /metrics, /admin/workers), and turns SIGHUP into a reload of every
 * worker and SIGTERM/SIGINT into a graceful drain of every worker, then exits. It loads no gateway code.
 */
export function runPrimary(opts: PrimaryOptions): Promise<void> {
  const slots: Slot[] = Array.from({ length: opts.workers }, (_, index) => ({
    index, worker: null, ready: false, forkedAt: 0, readyAt: 0, restarts: 0, crashes: 0, restartTimer: null, url: null, adminUrl: null,
  }))
  const pending = new Map<number, Pending>()
  let nextId = 1
  let started = false
  let stopping = false
  /** When the last reload fan-out began: a worker forked before it and ready after it missed it. */
  let lastReloadAt = 0
  const slotOf = (w: Worker) => slots.find((s) => s.worker === w)
  const baseSlot = process.env.SLUICE_WORKER_ID

  const fork = (slot: Slot) => {
    slot.restartTimer = null
    slot.ready = false
    slot.forkedAt = Date.now()
    const env: Record<string, string> = {
      [ENV_WORKER_INDEX]: String(slot.index),
      [ENV_CLUSTER_SIZE]: String(opts.workers),
      SLUICE_WORKER_ID: workerSlot(slot.index, baseSlot),
      // Read by glibc when a process starts, so it can only be given to a child: two malloc arenas instead of
      // one per allocating thread hold 6-11 MiB less per gateway for the same CPU (BENCHMARKS.md, "Two
      // malloc arenas"). An operator's own value wins.
      MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '2',
    }
    if (opts.adminToken) env[ENV_ADMIN_TOKEN] = opts.adminToken
    const w = cluster.fork(env)
    slot.worker = w
    w.on('message', (m: unknown) => { if (isSluiceMessage(m)) onMessage(slot, w, m as WorkerMessage) })
  }

  const send = (w: Worker, m: PrimaryMessage) => {
    if (w.isConnected()) w.send(m, (err: Error | null) => { if (err) { /* the worker is gone; its exit handler answers for it */ } })
  }

  /** Asks every ready worker to do `op`; resolves with every answer (a worker that dies or times out answers an error). */
  const fanout = (op: FanoutOp): Promise<FanoutAnswer[]> => {
    if (op === 'reload') lastReloadAt = Date.now()
    const targets = slots.filter((s) => s.ready && s.worker)
    if (targets.length === 0) return Promise.resolve([])
    const id = nextId++
    return new Promise((resolve) => {
      const p: Pending = {
        answers: [], waiting: new Map(targets.map((s) => [s.index, s])), done: resolve,
        timer: setTimeout(() => finishMissing(id, 'did not answer in time'), FANOUT_TIMEOUT_MS),
      }
      pending.set(id, p)
      for (const s of targets) send(s.worker!, { t: 'sluice:do', id, op })
    })
  }

  const settle = (id: number, answer: FanoutAnswer) => {
    const p = pending.get(id)
    if (!p || !p.waiting.has(answer.index)) return
    p.waiting.delete(answer.index)
    p.answers.push(answer)
    if (p.waiting.size === 0) {
      clearTimeout(p.timer)
      pending.delete(id)
      p.done(p.answers.sort((a, b) => a.index - b.index))
    }
  }
  const finishMissing = (id: number, why: string, only?: Slot) => {
    const p = pending.get(id)
    if (!p) return
    for (const s of [...p.waiting.values()]) {
      if (only && s !== only) continue
      settle(id, { index: s.index, pid: s.worker?.process.pid ?? 0, ok: false, error: { message: `worker ${s.index} ${why}` } })
    }
  }

  const onMessage = (slot: Slot, w: Worker, m: WorkerMessage) => {
    if (m.t === 'sluice:ready') {
      slot.ready = true
      slot.readyAt = Date.now()
      slot.url = m.url
      slot.adminUrl = m.adminUrl
      if (started) {
        opts.out.write(`worker ${slot.index} ready (pid ${w.process.pid})\n`)
        // Forked before the last reload began and ready after it: it may have read the file before the change.
        if (lastReloadAt >= slot.forkedAt) send(w, { t: 'sluice:do', id: 0, op: 'reload' })
      } else if (slots.every((s) => s.ready)) {
        started = true
        const first = slots[0]!
        const pids = slots.map((s) => s.worker!.process.pid).join(', ')
        opts.out.write(`sluice listening on ${first.url}${first.adminUrl ? ` (admin ${first.adminUrl})` : ''} with ${opts.source}, ${opts.workers} workers (pids ${pids}; primary ${process.pid})\n`)
      }
    } else if (m.t === 'sluice:fanout') {
      void fanout(m.op).then((answers) => {
        const restarts: Record<number, number> = {}
        for (const s of slots) restarts[s.index] = s.restarts
        send(w, { t: 'sluice:fanout-result', id: m.id, answers, restarts })
      })
    } else if (m.t === 'sluice:done') {
      if (m.id === 0) return // a catch-up reload nobody waits for
      settle(m.id, { index: slot.index, pid: w.process.pid ?? 0, ok: m.ok, result: m.result, error: m.error })
    }
  }

  return new Promise<void>(() => {
    cluster.on('exit', (w, code, signal) => {
      const slot = slotOf(w)
      if (!slot) return
      slot.worker = null
      slot.ready = false
      for (const id of pending.keys()) finishMissing(id, 'exited', slot)
      if (stopping) {
        if (slots.every((s) => s.worker === null)) {
          opts.out.write('all workers stopped\n')
          opts.exit(exitCode)
        }
        return
      }
      const how = signal ? `signal ${signal}` : `code ${code}`
      if (!started) {
        // A worker that cannot start (port taken, store unreachable, bad file) would fail the same way again.
        opts.err.write(`worker ${slot.index} exited during start-up (${how}); stopping\n`)
        stopAll(1)
        return
      }
      const lived = Date.now() - slot.forkedAt
      slot.crashes = lived >= HEALTHY_AFTER_MS ? 1 : slot.crashes + 1
      const delay = Math.min(MAX_RESTART_MS, FIRST_RESTART_MS * 2 ** (slot.crashes - 1))
      slot.restarts++
      opts.err.write(`worker ${slot.index} (pid ${w.process.pid}) exited (${how}); restarting in ${delay} ms\n`)
      slot.restartTimer = setTimeout(() => fork(slot), delay)
    })

    let exitCode = 0
    const stopAll = (code: number) => {
      exitCode = Math.max(exitCode, code)
      if (stopping) return
      stopping = true
      for (const s of slots) {
        if (s.restartTimer) clearTimeout(s.restartTimer)
        s.restartTimer = null
        // The worker's own SIGTERM handler drains it (its IPC channel stays open meanwhile).
        if (s.worker) s.worker.process.kill('SIGTERM')
      }
      if (slots.every((s) => s.worker === null)) return opts.exit(exitCode)
      setTimeout(() => {
        for (const s of slots) if (s.worker) s.worker.process.kill('SIGKILL')
      }, opts.shutdownGrace + EXIT_MARGIN_MS).unref()
    }
    const onStop = (signal: string) => {
      if (stopping) return
      opts.out.write(`${signal}: every worker finishes its requests in flight, then stops\n`)
      stopAll(0)
    }
    process.on('SIGTERM', () => onStop('SIGTERM'))
    process.on('SIGINT', () => onStop('SIGINT'))
    process.on('SIGHUP', () => {
      void fanout('reload').then((answers) => {
        const failed = answers.filter((a) => !a.ok)
        if (failed.length === 0) opts.out.write(`configuration reloaded on ${answers.length} workers\n`)
        else opts.err.write(`reload refused, the running configuration keeps serving:\n${failed.map((a) => a.error?.message ?? '').join('\n')}\n`)
      })
    })
    for (const s of slots) fork(s)
  })
}
