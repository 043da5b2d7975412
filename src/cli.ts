import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { loadConfigFile, formatProblems, type LoadResult } from './config/load.ts'
import type { GatewayConfig } from './config/schema.ts'
import { DEMO_KEY, loadDemoConfig } from './demo.ts'
import { builtinPolicies } from './policies/registry.ts'
import { createGateway } from './server/gateway.ts'
import { randomBytes } from 'node:crypto'
import { createKeyStore } from './stores/key-store.ts'
import { newKey } from './control/keys.ts'
import { CliError, MANAGEMENT_USAGE, runManagementCommand } from './control/management/cli.ts'
import { createManagementStore } from './finops/wiring.ts'

const USAGE = `Usage:
  sluice start  [--config FILE] [--port N] [--admin-port N]
  sluice check  --config FILE
  sluice mock   [--port N] [--latency MS] [--ttft MS] [--tps N] [--fail RATE] [--status CODE]
  sluice keys   create --consumer ID [--label TEXT] [--config FILE]
  sluice keys   list [--consumer ID] [--config FILE]
  sluice keys   revoke KEY_ID [--config FILE]
${MANAGEMENT_USAGE}  sluice usage  [--by consumer|model|backend|day] [--since 24h|ISO] [--until ISO] [--format table|json|csv] [--config FILE]
  sluice ledger recover --journal DIR [--config FILE]
`

async function loadFor(configFlag: string | undefined): Promise<{ result: LoadResult; file: string | undefined }> {
  const registry = builtinPolicies()
  const file = configFlag ?? (existsSync('sluice.yaml') ? 'sluice.yaml' : undefined)
  if (file) return { result: await loadConfigFile(resolve(file), { registry }), file: resolve(file) }
  return { result: loadDemoConfig(process.env, registry), file: undefined }
}

function fail(message: string): never {
  process.stderr.write(message.endsWith('\n') ? message : message + '\n')
  process.exit(1)
}

async function start(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' }, port: { type: 'string' }, 'admin-port': { type: 'string' } } })
  const { result, file } = await loadFor(values.config)
  if (!result.ok) fail(`${file ?? 'demo configuration'} is invalid:\n${formatProblems(result.problems)}`)
  let config: GatewayConfig = result.config
  if (values.port || values['admin-port']) {
    config = {
      ...config,
      listen: { ...config.listen, port: values.port ? Number(values.port) : config.listen.port },
      admin: { ...config.admin, port: values['admin-port'] ? Number(values['admin-port']) : config.admin.port },
    }
  }
  // An admin plane is never left open: without a configured token one is made for this run and printed once,
  // on stderr (never in a response, never in the log).
  let generatedToken: string | null = null
  if (config.admin.enabled && !config.admin.token) {
    generatedToken = randomBytes(24).toString('base64url')
    config = { ...config, admin: { ...config.admin, token: generatedToken } }
  }
  const gw = await createGateway({ config, configFile: file })
  const { url, adminUrl } = await gw.listen()
  const out = process.stdout
  if (generatedToken) process.stderr.write(`admin token (generated for this run; set admin.token to choose one): ${generatedToken}\n`)
  out.write(`sluice listening on ${url}${adminUrl ? ` (admin ${adminUrl})` : ''} with ${file ?? 'the built-in demo configuration'}\n`)
  if (!file) out.write(`demo consumer key: ${process.env.SLUICE_DEMO_KEY || DEMO_KEY}\n`)
  let stopping = false
  const stop = async (signal: string) => {
    if (stopping) return
    stopping = true
    out.write(`${signal}: finishing requests in flight, then stopping\n`)
    try {
      await gw.close()
    } finally {
      process.exit(0)
    }
  }
  process.on('SIGTERM', () => void stop('SIGTERM'))
  process.on('SIGINT', () => void stop('SIGINT'))
  process.on('SIGHUP', () => {
    gw.reload().then(
      (v) => out.write(`configuration reloaded (version ${v})\n`),
      (err: Error) => process.stderr.write(`reload refused, the running configuration keeps serving:\n${err.message}\n`),
    )
  })
}

async function check(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' } } })
  if (!values.config) fail('sluice check needs --config FILE')
  const result = await loadConfigFile(resolve(values.config), { registry: builtinPolicies() })
  if (!result.ok) fail(`${values.config}: ${result.problems.length} problem${result.problems.length > 1 ? 's' : ''}\n${formatProblems(result.problems)}`)
  process.stdout.write(`${values.config}: ok\n`)
}

async function keys(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv
  if (sub === 'rotate') return management('keys', argv)
  const { values, positionals } = parseArgs({
    args: rest, allowPositionals: true,
    options: { config: { type: 'string' }, consumer: { type: 'string' }, label: { type: 'string' } },
  })
  const { result } = await loadFor(values.config)
  if (!result.ok) fail(`configuration is invalid:\n${formatProblems(result.problems)}`)
  const store = await createKeyStore(result.config.ledger)
  try {
    if (sub === 'create') {
      if (!values.consumer) fail('sluice keys create needs --consumer ID')
      if (!result.config.consumers.some((c) => c.id === values.consumer)) {
        // A consumer created at run time lives in the management store beside the keys.
        const mgmt = await createManagementStore(result.config)
        const known = (await mgmt.load()).consumers.some((c) => c.id === values.consumer)
        await mgmt.close()
        if (!known) fail(`no consumer "${values.consumer}" in the configuration or created at run time`)
      }
      const { key, record } = newKey(values.consumer, values.label ?? null)
      await store.add(record)
      process.stdout.write(`created ${record.id} for consumer ${record.consumerId}\n${key}\n(this key is shown once; only its SHA-256 digest is stored)\n`)
    } else if (sub === 'list') {
      const list = await store.list(values.consumer)
      for (const k of list) process.stdout.write(`${k.id}\t${k.consumerId}\t${k.prefix}…\t${k.createdAt}\t${k.revokedAt ? `revoked ${k.revokedAt}` : 'active'}\t${k.label ?? ''}\n`)
      if (list.length === 0) process.stdout.write('no stored keys\n')
    } else if (sub === 'revoke') {
      const id = positionals[0]
      if (!id) fail('sluice keys revoke needs a KEY_ID')
      if (!(await store.revoke(id))) fail(`no active key ${id}`)
      process.stdout.write(`revoked ${id} (running gateways stop accepting it within auth.keyCacheTtl: ${Math.round(result.config.auth.keyCacheTtl / 1000)} s)\n`)
    } else fail(USAGE)
  } finally {
    await store.close()
  }
}

async function management(kind: 'consumers' | 'products' | 'keys' | 'audit', argv: string[]): Promise<void> {
  try {
    await runManagementCommand(kind, argv, loadFor)
  } catch (err) {
    if (err instanceof CliError) fail(err.message)
    throw err
  }
}

export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv
  switch (command) {
    case 'start': return start(rest)
    case 'check': return check(rest)
    case 'mock': {
      const { runMockCommand } = await import('./mock/cli.ts')
      return runMockCommand(rest)
    }
    case 'keys': return keys(rest)
    case 'consumers': case 'products': case 'audit': return management(command, rest)
    case 'usage': {
      const { runUsageCommand } = await import('./ledger/usage-command.ts')
      return runUsageCommand(rest, loadFor)
    }
    case 'ledger': {
      const { runLedgerCommand } = await import('./ledger/recover-command.ts')
      return runLedgerCommand(rest, loadFor)
    }
    case undefined: return start([])
    case '--help': case '-h': case 'help':
      process.stdout.write(USAGE)
      return
    default:
      fail(`unknown command "${command}"\n${USAGE}`)
  }
}
