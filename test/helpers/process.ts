import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'

/** A port that was free a moment ago (bind to 0, read it, release it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}

export interface GatewayProcess {
  readonly child: ChildProcess
  readonly url: string
  /** The admin plane's base URL, '' when it is disabled. */
  readonly adminUrl: string
  output(): string
  /** Resolves with the exit code. */
  exited: Promise<number | null>
}

/**
 * Runs `sluice start --config FILE` as a child process and waits until it listens (failing after 60 s: a cold
 * start compiles the TypeScript sources, which takes long on a loaded 2-core machine). The
 * addresses are read from its start-up line, so a config may listen on port 0; `port` is only a fallback.
 */
export async function spawnGateway(configFile: string, port = 0, env: Record<string, string> = {}, nodeArgs: readonly string[] = []): Promise<GatewayProcess> {
  const child = spawn(process.execPath, [...nodeArgs, 'bin/sluice.js', 'start', '--config', configFile], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout!.on('data', (d) => { out += d })
  child.stderr!.on('data', (d) => { out += d })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    const m = /sluice listening on (\S+)(?: \(admin (\S+)\))?/.exec(out)
    if (m) {
      const url = m[1]!.replace('0.0.0.0', '127.0.0.1') || `http://127.0.0.1:${port}`
      return { child, url, adminUrl: m[2] ?? '', output: () => out, exited }
    }
    if (child.exitCode !== null) break
    await new Promise((r) => setTimeout(r, 50))
  }
  child.kill('SIGKILL')
  throw new Error(`gateway did not start${child.exitCode === null ? ' within 60 s' : ` (exit ${child.exitCode})`}:\n${out}`)
}

/**
 * A gateway config that starts without any service or backend: one consumer key, the memory store, no
 * ledger, and a backend at a closed port that nothing in the test calls (for tests of the process itself).
 */
export function idleGatewayYaml(key: string): string {
  return `listen: { host: 127.0.0.1, port: 0 }
admin: { enabled: false }
logging: { level: warn }
ledger: { type: none }
store: { type: memory }
backends:
  - { id: fake, type: openai-compatible, url: http://127.0.0.1:1/v1 }
models:
  - { name: gpt-4o-mini, target: fake }
consumers:
  - { id: c, keys: [ { value: ${key} } ] }
`
}
