import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { formatProblems, type LoadResult } from '../config/load.ts'
import { createLedgerStore } from '../stores/ledger-store.ts'
import type { LedgerStore, MessageRecord, UsageRecord } from '../stores/ledger.ts'
import { Journal, journalSlots, type ReplayedRecord } from './journal.ts'
import { lockHeld } from './journal-lock.ts'

type Loader = (configFlag: string | undefined) => Promise<{ result: LoadResult; file: string | undefined }>

function fail(message: string): never {
  process.stderr.write(message.endsWith('\n') ? message : message + '\n')
  process.exit(1)
}

export interface RecoverResult { readonly slot: string; readonly usage: number; readonly messages: number }

/**
 * Replays every orphan journal in `dir` (slots whose process no longer runs) into `store`, then removes
 * their files. A slot held by a running process is left to it. Idempotent: records the store holds already
 * are skipped by their record id, so running it twice, or over a journal a restarted gateway replayed
 * meanwhile, writes nothing twice.
 */
export async function recoverJournals(dir: string, store: LedgerStore, out: (line: string) => void = () => {}): Promise<RecoverResult[]> {
  const results: RecoverResult[] = []
  for (const slot of journalSlots(dir)) {
    if (lockHeld(dir, slot)) { out(`slot ${slot}: held by a running process, left alone`); continue }
    let journal: Journal
    try {
      journal = Journal.open({ dir, slot, maxBytes: Number.MAX_SAFE_INTEGER })
    } catch (err) {
      out(`slot ${slot}: ${(err as Error).message}`)
      continue
    }
    let usage = 0
    let messages = 0
    try {
      await journal.replay(async (chunk: ReplayedRecord[]) => {
        const u = chunk.filter((r) => r.kind === 'usage')
        const m = chunk.filter((r) => r.kind === 'messages')
        await store.append(u.map((r) => r.value as UsageRecord))
        journal.committed('usage', u.map((r) => r.pos))
        await store.appendMessages(m.map((r) => r.value as MessageRecord))
        journal.committed('messages', m.map((r) => r.pos))
        usage += u.length
        messages += m.length
      }, 1000)
    } finally {
      journal.close()
    }
    out(`slot ${slot}: ${usage} usage records, ${messages} message logs`)
    results.push({ slot, usage, messages })
  }
  return results
}

/** `sluice ledger recover --journal DIR [--config FILE]`: an orphan journal (a replica that never came back) into the shared store. */
export async function runLedgerCommand(argv: string[], load: Loader): Promise<void> {
  const [sub, ...rest] = argv
  if (sub !== 'recover') fail('usage: sluice ledger recover --journal DIR [--config FILE]')
  const { values } = parseArgs({ args: rest, options: { config: { type: 'string' }, journal: { type: 'string' } } })
  if (!values.journal) fail('sluice ledger recover needs --journal DIR (the journal directory of the process that is gone)')
  const dir = resolve(values.journal)
  if (!existsSync(dir)) fail(`${dir}: no such directory`)
  const { result, file } = await load(values.config)
  if (!result.ok) fail(`${file ?? 'demo configuration'} is invalid:\n${formatProblems(result.problems)}`)
  const store = await createLedgerStore(result.config.ledger)
  if (!store) fail('the configuration keeps no usage ledger (ledger: { type: none })')
  try {
    const results = await recoverJournals(dir, store, (line) => process.stdout.write(line + '\n'))
    const usage = results.reduce((a, r) => a + r.usage, 0)
    const messages = results.reduce((a, r) => a + r.messages, 0)
    process.stdout.write(`recovered ${usage} usage records and ${messages} message logs from ${results.length} journal${results.length === 1 ? '' : 's'} in ${dir} into the ${store.type} ledger\n`)
  } catch (err) {
    fail(`recovery stopped (${store.type}): ${(err as Error).message}; what was not written stays in the journal, run it again`)
  } finally {
    await store.close()
  }
}
