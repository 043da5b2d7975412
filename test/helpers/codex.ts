import { spawn } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'

/** The Codex CLI launcher from the dev dependency (it execs the native binary of the platform package). */
export const CODEX = join(process.cwd(), 'node_modules/.bin/codex')

/** The environment variable the Sluice model provider reads its key from (`env_key`). */
const KEY_ENV = 'SLUICE_API_KEY'

/**
 * The config.toml of a throwaway CODEX_HOME: one model provider whose base URL is Sluice, speaking Responses,
 * no approvals and no sandbox (the Linux sandbox cannot run as root in a container; the workspace is a temp
 * dir), and every feature that would reach the internet off: the update check, analytics, feedback uploads,
 * and the plugin/app catalogue sync (which otherwise fetches github.com and chatgpt.com at startup). A custom
 * provider has no ChatGPT login (`requires_openai_auth` is false by default). Web search stays on, as real
 * agents send it: it is a hosted tool the provider runs, never Codex itself.
 */
export function codexConfig(baseUrl: string, model: string, extra: readonly string[] = []): string {
  return `model = "${model}"
${extra.map((l) => `${l}\n`).join('')}model_provider = "sluice"
approval_policy = "never"
sandbox_mode = "danger-full-access"
check_for_update_on_startup = false

[model_providers.sluice]
name = "Sluice"
base_url = "${baseUrl}"
wire_api = "responses"
env_key = "${KEY_ENV}"
request_max_retries = 0
stream_max_retries = 0

[analytics]
enabled = false

[feedback]
enabled = false

[features]
plugins = false
remote_plugin = false
apps = false
`
}

/** One line of `codex exec --json` (thread.started, item.completed, turn.completed…). */
export interface CodexEvent {
  readonly type: string
  readonly item?: { readonly type: string; readonly text?: string; readonly command?: string; readonly aggregated_output?: string; readonly exit_code?: number | null; readonly message?: string }
  readonly usage?: { readonly input_tokens: number; readonly cached_input_tokens: number; readonly output_tokens: number; readonly reasoning_output_tokens: number }
}

export interface CodexRun {
  readonly code: number | null
  readonly out: string
  readonly err: string
  readonly events: CodexEvent[]
  /** The agent's final message (`--output-last-message`), '' when it wrote none. */
  readonly lastMessage: string
  /** Every connection Codex tried to open anywhere but loopback (host:port or URL), seen by the tripwire proxy. */
  readonly egress: string[]
}

/**
 * A loopback proxy that refuses everything and remembers what was asked of it: Codex honours HTTPS_PROXY, so any
 * request it would make off the machine lands here instead (and fails), and the test can assert there was none.
 */
async function startTripwire(): Promise<{ url: string; seen: string[]; close(): Promise<void> }> {
  const seen: string[] = []
  const server = http.createServer((req, res) => {
    seen.push(String(req.url))
    res.writeHead(502).end()
  })
  server.on('connect', (req, socket) => {
    seen.push(String(req.url))
    socket.end('HTTP/1.1 502 Bad Gateway\r\n\r\n')
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()) }),
  }
}

/**
 * Runs `codex exec --json PROMPT` in `cwd` against `baseUrl` (a Sluice `/v1` URL) with `apiKey`, a fresh
 * CODEX_HOME under `home`, nothing inherited from the user's environment but PATH, and a tripwire proxy for
 * anything that would leave loopback. A run longer than `timeoutMs` is killed and REJECTS, so a hung agent fails
 * the test instead of passing it by a harness timeout.
 */
export async function runCodex(opts: {
  prompt: string; cwd: string; home: string; baseUrl: string; apiKey: string; model: string; timeoutMs?: number
  /** More top-level config.toml lines, e.g. `model_reasoning_effort = "high"`. */
  config?: readonly string[]
  /** More `codex exec` options, e.g. `--enable plugins`. */
  args?: readonly string[]
}): Promise<CodexRun> {
  const codexHome = join(opts.home, '.codex')
  mkdirSync(codexHome, { recursive: true })
  writeFileSync(join(codexHome, 'config.toml'), codexConfig(opts.baseUrl, opts.model, opts.config))
  const lastFile = join(opts.home, 'last-message.txt')
  writeFileSync(lastFile, '')
  const tripwire = await startTripwire()
  try {
    const args = ['exec', '--json', '--skip-git-repo-check', '--ephemeral', ...(opts.args ?? []), '-o', lastFile, opts.prompt]
    const child = spawn(CODEX, args, {
      cwd: opts.cwd,
      env: {
        PATH: process.env.PATH,
        HOME: opts.home,
        CODEX_HOME: codexHome,
        [KEY_ENV]: opts.apiKey,
        HTTPS_PROXY: tripwire.url,
        HTTP_PROXY: tripwire.url,
        ALL_PROXY: tripwire.url,
        NO_PROXY: '127.0.0.1,localhost',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    const timeoutMs = opts.timeoutMs ?? 60_000
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL')
        reject(new Error(`codex exec did not finish within ${timeoutMs} ms\nstdout: ${out.slice(-2000)}\nstderr: ${err.slice(-2000)}`))
      }, timeoutMs)
      child.on('error', (e) => { clearTimeout(timer); reject(e) })
      child.on('exit', (c) => { clearTimeout(timer); resolve(c) })
    })
    const events = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as CodexEvent)
    return { code, out, err, events, lastMessage: readFileSync(lastFile, 'utf8'), egress: [...tripwire.seen] }
  } finally {
    await tripwire.close()
  }
}
