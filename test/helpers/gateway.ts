import pino from 'pino'
import { loadConfigText, formatProblems } from '../../src/config/load.ts'
import { builtinPolicies } from '../../src/policies/registry.ts'
import type { PolicyRegistry } from '../../src/policies/types.ts'
import { createGateway, type Gateway, type GatewayOptions } from '../../src/server/gateway.ts'
import { MemoryKeyStore } from '../../src/stores/memory/keys.ts'

export const TEST_KEY = 'sk-test-key-team-a'
export const TEST_KEY_B = 'sk-test-key-team-b'

export interface TestGateway {
  readonly gw: Gateway
  /** Data-plane base URL, e.g. http://127.0.0.1:40123 */
  readonly url: string
  readonly adminUrl: string
  close(): Promise<void>
}

/**
 * Starts a real gateway on ephemeral loopback ports from YAML text. Ports, admin settings and the ledger
 * default to test-friendly values unless the YAML sets them. Logs are silenced unless SLUICE_TEST_LOGS=1.
 */
export async function startTestGateway(yaml: string, opts: Partial<GatewayOptions> & { registry?: PolicyRegistry; env?: Record<string, string> } = {}): Promise<TestGateway> {
  const registry = opts.registry ?? builtinPolicies()
  const text = [
    /^listen:/m.test(yaml) ? '' : 'listen: { host: 127.0.0.1, port: 0 }',
    /^admin:/m.test(yaml) ? '' : 'admin: { host: 127.0.0.1, port: 0 }',
    /^ledger:/m.test(yaml) ? '' : 'ledger: { type: none }',
    yaml,
  ].join('\n')
  const res = loadConfigText(text, { registry, env: { ...process.env, ...opts.env } })
  if (!res.ok) throw new Error(`test config invalid:\n${formatProblems(res.problems)}`)
  const gw = await createGateway({
    logger: pino({ level: process.env.SLUICE_TEST_LOGS ? 'debug' : 'silent' }),
    keyStore: new MemoryKeyStore(),
    ...opts,
    config: res.config,
    registry,
  })
  const { url, adminUrl } = await gw.listen()
  return { gw, url, adminUrl: adminUrl ?? '', close: () => gw.close() }
}

/** A minimal config: one mock backend serving gpt-4o-mini and an embedding model, two consumers. */
export const BASIC_YAML = `
backends:
  - id: mock-a
    type: mock
models:
  - { name: gpt-4o-mini, target: mock-a }
  - { name: text-embedding-3-small, target: mock-a }
products:
  - id: standard
    models: [gpt-4o-mini, text-embedding-3-small]
  - id: embed-only
    models: [text-embedding-3-small]
consumers:
  - id: team-a
    product: standard
    keys: [ { value: ${TEST_KEY} } ]
  - id: team-b
    product: embed-only
    keys: [ { value: ${TEST_KEY_B} } ]
`

export function authHeaders(key = TEST_KEY): Record<string, string> {
  return { authorization: `Bearer ${key}`, 'content-type': 'application/json' }
}

/** Whether a real Redis / PostgreSQL answers here. Under CI they are required: tests fail instead of skipping. */
export async function serviceAvailable(kind: 'redis' | 'postgres'): Promise<boolean> {
  const net = await import('node:net')
  const port = kind === 'redis' ? 6379 : 5432
  const up = await new Promise<boolean>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port })
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => resolve(false))
    s.setTimeout(1000, () => { s.destroy(); resolve(false) })
  })
  if (!up && process.env.CI === 'true') throw new Error(`${kind} is required under CI but is not reachable on 127.0.0.1:${port}`)
  if (!up) process.stderr.write(`# ${kind} not reachable on 127.0.0.1:${port}: skipping the tests that need it\n`)
  return up
}
