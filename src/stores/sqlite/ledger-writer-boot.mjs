// Entry of the ledger writer thread when Sluice runs from its TypeScript sources: a worker does not inherit
// the loader hooks bin/sluice.js registered, so it registers tsx itself (the compiled build needs none).
import { register } from 'tsx/esm/api'
register()
await import('./ledger-writer.ts')
