import { createRequire } from 'node:module'
import type { Dispatcher as DispatcherType, Pool as PoolType } from 'undici'

// undici's index loads the whole package: fetch with its web streams and WebIDL, WebSocket, EventSource, the
// HTTP cache (with a SQLite store), the mock agents. The gateway's request path needs only `Pool` and the
// `request()` family on it, and the rest cost ≈ 9 MiB of an idle process (measured: a bare node with the
// index 60.2 MiB RSS, with the pool and its API 51.5). These are the modules undici's own index requires for
// them, at the version the lockfile pins; code that needs fetch imports `undici` itself, when it needs it.
const require = createRequire(import.meta.url)
const Dispatcher = require('undici/lib/dispatcher/dispatcher.js') as typeof DispatcherType
const api = require('undici/lib/api/index.js') as object
// What undici's index does so that `pool.request()`, `.stream()`, `.pipeline()`, `.upgrade()` and `.connect()`
// exist; idempotent, so the index loaded later (fetch's users) changes nothing.
Object.assign(Dispatcher.prototype, api)

export const Pool = require('undici/lib/dispatcher/pool.js') as typeof PoolType
export type Pool = PoolType
