import { parseArgs } from 'node:util'
import { formatProblems, type LoadResult } from '../config/load.ts'
import { createLedgerStore } from '../stores/ledger-store.ts'
import { parseUsageQuery, usageCsv, usageTable, USAGE_FORMATS, UsageParamError, type UsageFormat } from './report.ts'

type Loader = (configFlag: string | undefined) => Promise<{ result: LoadResult; file: string | undefined }>

function fail(message: string): never {
  process.stderr.write(message.endsWith('\n') ? message : message + '\n')
  process.exit(1)
}

/**
 * `sluice usage [--by consumer|model|backend|day] [--since 24h] [--until ISO] [--format table|json|csv] [--config FILE]`:
 * the chargeback report read straight from the ledger store (no running gateway needed). Records a running
 * gateway still holds in its write-behind queue (at most `flushInterval` old) are not in it yet.
 */
export async function runUsageCommand(argv: string[], load: Loader): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { config: { type: 'string' }, by: { type: 'string' }, since: { type: 'string' }, until: { type: 'string' }, format: { type: 'string' } },
  })
  const format = (values.format ?? 'table') as UsageFormat
  if (!USAGE_FORMATS.includes(format)) fail(`--format is one of ${USAGE_FORMATS.join(', ')}`)
  let query
  try {
    query = parseUsageQuery({ by: values.by, since: values.since, until: values.until }, Date.now())
  } catch (err) {
    if (err instanceof UsageParamError) fail(`--${err.param}: ${err.message}`)
    throw err
  }
  const { result, file } = await load(values.config)
  if (!result.ok) fail(`${file ?? 'demo configuration'} is invalid:\n${formatProblems(result.problems)}`)
  const store = await createLedgerStore(result.config.ledger)
  if (!store) fail('the configuration keeps no usage ledger (ledger: { type: none })')
  try {
    const rows = await store.usage(query)
    const out = format === 'json' ? JSON.stringify({ rows }, null, 2) + '\n' : format === 'csv' ? usageCsv(rows) : usageTable(rows, query.by)
    process.stdout.write(out)
  } catch (err) {
    fail(`could not read the ledger (${store.type}): ${(err as Error).message}`)
  } finally {
    await store.close()
  }
}
