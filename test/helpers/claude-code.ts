import { spawn } from 'node:child_process'
import { join } from 'node:path'

/** The native Claude Code binary from the dev dependency. */
export const CLAUDE = join(process.cwd(), 'node_modules/.bin/claude')

/**
 * Runs `claude -p PROMPT --output-format json --allowedTools Write` against a gateway, with a throwaway
 * HOME, every optional network feature off and a dead loopback proxy as a safety net, so nothing can
 * leave the machine. Resolves with the exit code and what it printed.
 */
export async function runClaude(opts: { prompt: string; cwd: string; home: string; baseUrl: string; apiKey: string }): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(CLAUDE, ['-p', opts.prompt, '--output-format', 'json', '--allowedTools', 'Write'], {
    cwd: opts.cwd,
    env: {
      PATH: process.env.PATH,
      HOME: opts.home,
      ANTHROPIC_BASE_URL: opts.baseUrl,
      ANTHROPIC_API_KEY: opts.apiKey,
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
      DISABLE_AUTOUPDATER: '1',
      DISABLE_TELEMETRY: '1',
      DISABLE_ERROR_REPORTING: '1',
      HTTPS_PROXY: 'http://127.0.0.1:9',
      HTTP_PROXY: 'http://127.0.0.1:9',
      NO_PROXY: '127.0.0.1,localhost',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (err += d))
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  return { code, out, err }
}
