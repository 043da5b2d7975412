import { createRequire } from 'node:module'

const requireFromHere = createRequire(import.meta.url)

/**
 * A package loaded the first time it is used instead of when the gateway starts. Each of the packages only some
 * configurations need (JWT validation, CEL expressions, AWS event streams, WebSockets) costs 1–2 MiB of heap
 * for its code and source text once loaded, and a module is never unloaded; loaded up front they kept an
 * idle gateway above its memory target (issue 16) whatever it was configured to do. `require` (which loads
 * ES modules synchronously since Node 20.19) rather than `import()`, because the callers are synchronous:
 * a config check, a parser's constructor, an upgrade handler. Node caches the module, so later calls cost
 * one property read.
 */
export function lazyPackage<T>(specifier: string): () => T {
  let loaded: T | undefined
  return () => (loaded ??= requireFromHere(specifier) as T)
}
