import type { Logger } from 'pino'
import { clipText } from '../core/bounded.ts'

/** What is logged of an error: its kind and a cut message, never its stack (a log is no place for internals). */
export function errorSummary(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) {
    // A summary made at the call site (`{ err: { message, code? } }`, how the stores, the breakers and the
    // ledger log a failure without its stack) or by this function: its message is kept, bounded. Only a thing
    // with no message of its own is described by its string form.
    const o = err as { type?: unknown; message?: unknown; code?: unknown } | null
    if (o && typeof o === 'object' && typeof o.message === 'string') {
      return { type: typeof o.type === 'string' ? o.type : 'Error', message: clipText(o.message, 200), ...(typeof o.code === 'string' ? { code: o.code } : {}) }
    }
    return { type: typeof err, message: clipText(String(err), 200) }
  }
  const code = (err as { code?: unknown }).code
  return { type: err.name, message: clipText(err.message, 200), ...(typeof code === 'string' ? { code } : {}) }
}

export interface ProcessErrorCounter {
  processError(kind: 'uncaught_exception' | 'unhandled_rejection'): void
}

/**
 * Keeps the process alive through an error thrown outside any request (a timer, a socket callback, a
 * promise nobody awaited): it is logged (kind and message, no stack) and counted in
 * `sluice_process_errors_total`, and the gateway goes on serving. Returns the function that removes the
 * handlers (on close), so several gateways in one process each install and remove their own.
 */
export function installProcessGuards(logger: Logger, counter: ProcessErrorCounter | null): () => void {
  const onException = (err: unknown) => {
    counter?.processError('uncaught_exception')
    logger.error({ err: errorSummary(err) }, 'an error was thrown outside any request; the gateway keeps serving')
  }
  const onRejection = (reason: unknown) => {
    counter?.processError('unhandled_rejection')
    logger.error({ err: errorSummary(reason) }, 'a promise was rejected with nobody handling it; the gateway keeps serving')
  }
  process.on('uncaughtException', onException)
  process.on('unhandledRejection', onRejection)
  return () => {
    process.off('uncaughtException', onException)
    process.off('unhandledRejection', onRejection)
  }
}
