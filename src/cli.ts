import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { loadConfigFile, formatProblems, type LoadResult } from './config/load.ts'
import type { GatewayConfig } from './config/schema.ts'
import { DEMO_KEY, loadDemoConfig } from './demo.ts'
import { builtinPolicies } from './policies/registry.ts'
import { randomBytes } from 'node:crypto'
import cluster from 'node:cluster'
import { checkWorkersConfig } from './cluster/config-check.ts'
import { ENV_ADMIN_TOKEN, forkedByPrimary } from './cluster/protocol.ts'
import type { ClusterMember } from './cluster/member.ts'
import { createKeyStore } from './stores/key-store.ts'
import { newKey } from './control/keys.ts'
import { CliError, MANAGEMENT_USAGE, runManagementCommand } from './control/management/cli.ts'
import { createManagementStore } from './finops/wiring.ts'

const USAGE = `Usage:
  sluice start  [--config FILE] [--port N] [--admin-port N] [--workers N]
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
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' }, port: { type: 'string' }, 'admin-port': { type: 'string' }, workers: { type: 'string' } } })
  const { result, file } = await loadFor(values.config)
  if (!result.ok) fail(`${file ?? 'demo configuration'} is invalid:\n${formatProblems(result.problems)}`)
  let config: GatewayConfig = result.config
  if (values.workers !== undefined && !/^([1-9]|[1-5][0-9]|6[0-4])$/.test(values.workers)) fail('--workers takes a number of worker processes from 1 to 64')
  if (values.port || values['admin-port'] || values.workers) {
    config = {
      ...config,
      listen: { ...config.listen, port: values.port ? Number(values.port) : config.listen.port, workers: values.workers ? Number(values.workers) : config.listen.workers },
      admin: { ...config.admin, port: values['admin-port'] ? Number(values['admin-port']) : config.admin.port },
    }
    // --workers N is held to the same rule as listen.workers: N in the file.
    const problems: string[] = []
    checkWorkersConfig(config, (path, message) => problems.push(`  ${path.join('.')}: ${message}`))
    if (problems.length) fail(`${file ?? 'demo configuration'} cannot run with --workers ${config.listen.workers}:\n${problems.join('\n')}`)
  }
  const member = config.listen.workers > 1 && cluster.isWorker && forkedByPrimary() ? new (await import('./cluster/member.ts')).ClusterMember() : null
  const primary = config.listen.workers > 1 && !member
  // An admin plane is never left open: without a configured token one is made for this run and printed once,
  // on stderr (never in a response, never in the log). A cluster's primary makes it and hands it to every worker.
  let generatedToken: string | null = null
  if (config.admin.enabled && !config.admin.token) {
    generatedToken = member ? process.env[ENV_ADMIN_TOKEN] || null : randomBytes(24).toString('base64url')
    if (generatedToken) config = { ...config, admin: { ...config.admin, token: generatedToken } }
  }
  if (primary) {
    // The primary forks the workers and loads no gateway code (src/cluster/primary.ts).
    const { runPrimary } = await import('./cluster/primary.ts')
    if (generatedToken) process.stderr.write(`admin token (generated for this run; set admin.token to choose one): ${generatedToken}\n`)
    return runPrimary({
      workers: config.listen.workers, shutdownGrace: config.listen.shutdownGrace, adminToken: generatedToken,
      source: file ?? 'the built-in demo configuration', out: process.stdout, err: process.stderr, exit: (code) => process.exit(code),
    })
  }
  return serve(config, file, generatedToken, member)
}

/** One gateway process: the whole gateway alone, or one worker of a cluster. */
async function serve(config: GatewayConfig, file: string | undefined, generatedToken: string | null, member: ClusterMember | null): Promise<void> {
  const { createGateway } = await import('./server/gateway.ts')
  const gw = await createGateway({ config, configFile: file, cluster: member ?? undefined })
  const heap = await import('./server/compact.ts')
  heap.boundOldGenerationGrowth()
  heap.collectStartupGarbage()
  const { url, adminUrl } = await gw.listen()
  heap.resumeYoungGenerationGrowth()
  const out = process.stdout
  if (member) {
    member.serve({
      reload: () => gw.reload(),
      metrics: () => gw.telemetry.prom.registry.getMetricsAsJSON(),
      status: () => ({
        index: member.index, pid: process.pid, configVersion: gw.runtime().snapshot.version, inflight: gw.inflight.count,
        uptimeSeconds: Math.round(process.uptime()), rssBytes: process.memoryUsage.rss(), admin: member.servesAdmin,
      }),
    })
    member.ready(url, adminUrl)
  } else {
    if (generatedToken) process.stderr.write(`admin token (generated for this run; set admin.token to choose one): ${generatedToken}\n`)
    out.write(`sluice listening on ${url}${adminUrl ? ` (admin ${adminUrl})` : ''} with ${file ?? 'the built-in demo configuration'}\n`)
    if (!file) out.write(`demo consumer key: ${process.env.SLUICE_DEMO_KEY || DEMO_KEY}\n`)
  }
  let stopping = false
  const stop = async (signal: string) => {
    if (stopping) return
    stopping = true
    if (!member) out.write(`${signal}: finishing requests in flight, then stopping\n`)
    try {
      await gw.close()
    } finally {
      process.exit(0)
    }
  }
  process.on('SIGTERM', () => void stop('SIGTERM'))
  process.on('SIGINT', () => void stop('SIGINT'))
  // A worker's own SIGHUP reloads it alone; the primary's reaches every worker.
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
