import net from 'node:net'
import OpenAI, { AzureOpenAI } from 'openai'
import { OpenAIRealtimeWS } from 'openai/realtime/ws'
import type { EventEmitter } from 'node:events'

/**
 * The openai SDK's Realtime client always dials `wss://` (internal-base.ts sets the protocol); the test
 * servers are plain loopback HTTP, so the SDK's own ws client gets a plain TCP connection to the same
 * host and port. Everything above TCP (handshake, headers, frames) is the SDK's.
 */
export const plainTcp = ((o: { host?: string | null; hostname?: string | null; port?: number | string | null }) =>
  net.connect({ host: (o.hostname ?? o.host ?? '127.0.0.1').replace(/^\[|\]$/g, ''), port: Number(o.port) })) as unknown as typeof net.createConnection

export interface RealtimeClient {
  readonly rt: OpenAIRealtimeWS
  /** Every server event received so far, in order. */
  readonly events: Array<Record<string, any>>
  /** Resolves with the first event of `type` from index `from` on; rejects (fails) after `timeoutMs`. */
  next(type: string, from?: number, timeoutMs?: number): Promise<Record<string, any>>
  /** Resolves with the socket's close code and reason; rejects after `timeoutMs`. */
  closed(timeoutMs?: number): Promise<{ code: number; reason: string }>
  send(ev: Record<string, unknown>): void
  close(): void
}

/** Opens a Realtime session with the SDK (OpenAI, or Azure with `azure`) and records its events. */
export async function openRealtime(baseURL: string, apiKey: string, model: string, o: { azure?: { apiVersion: string }; headers?: Record<string, string> } = {}): Promise<RealtimeClient> {
  const options = { createConnection: plainTcp, headers: o.headers }
  const rt = o.azure
    ? await OpenAIRealtimeWS.azure(new AzureOpenAI({ apiKey, endpoint: baseURL, apiVersion: o.azure.apiVersion, deployment: model }), { options })
    : new OpenAIRealtimeWS({ model, options }, new OpenAI({ apiKey, baseURL }))
  const events: Array<Record<string, any>> = []
  const waiters = new Set<() => void>()
  rt.on('event', (ev) => { events.push(ev as Record<string, any>); for (const w of waiters) w() })
  rt.on('error', () => {}) // error events are in `events` too; the tests look at them there
  let closeInfo: { code: number; reason: string } | null = null
  const closeWaiters = new Set<() => void>()
  rt.socket.on('close', (code, reason) => { closeInfo = { code, reason: reason.toString() }; for (const w of closeWaiters) w() })
  await new Promise<void>((resolve, reject) => {
    rt.socket.once('open', () => resolve())
    rt.socket.once('error', reject)
    rt.socket.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode })))
  })
  const next = (type: string, from = 0, timeoutMs = 15000) => new Promise<Record<string, any>>((resolve, reject) => {
    const check = () => {
      const hit = events.slice(from).find((e) => e.type === type)
      if (hit) { waiters.delete(check); clearTimeout(t); resolve(hit) }
    }
    const t = setTimeout(() => { waiters.delete(check); reject(new Error(`no ${type} event within ${timeoutMs} ms; got ${events.map((e) => e.type).join(', ')}`)) }, timeoutMs)
    waiters.add(check)
    check()
  })
  const closed = (timeoutMs = 15000) => new Promise<{ code: number; reason: string }>((resolve, reject) => {
    const check = () => { if (closeInfo) { closeWaiters.delete(check); clearTimeout(t); resolve(closeInfo) } }
    const t = setTimeout(() => { closeWaiters.delete(check); reject(new Error(`the session was not closed within ${timeoutMs} ms`)) }, timeoutMs)
    closeWaiters.add(check)
    check()
  })
  return { rt, events, next, closed, send: (ev) => rt.send(ev as never), close: () => rt.close() }
}

/** Waits for `event` on an emitter; a wait that times out fails. */
export function nextEmitted<T>(emitter: EventEmitter, event: string, timeoutMs: number, match: (v: T) => boolean = () => true): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const on = (v: T) => { if (!match(v)) return; clearTimeout(t); emitter.off(event, on); resolve(v) }
    const t = setTimeout(() => { emitter.off(event, on); reject(new Error(`no "${event}" within ${timeoutMs} ms`)) }, timeoutMs)
    emitter.on(event, on)
  })
}
