// Entry point of the embedding worker thread. Sluice runs its TypeScript sources through tsx, and a worker
// thread does not inherit loader hooks registered with `register()` in the main thread (bin/sluice.js does
// that), so the worker registers tsx itself before loading the .ts worker.
import { register } from 'tsx/esm/api'
register()
await import('./embed-worker.ts')
