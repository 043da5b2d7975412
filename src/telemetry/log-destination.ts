import pino from 'pino'

/** Lines are handed to the file in batches of at least this many bytes (and by the gateway's 1 s flush). */
const BATCH_BYTES = 4096

/**
 * The gateway's log destination: pino's asynchronous SonicBoom writing batches of at least 4 KiB, so a log
 * line never blocks the request path, holding the batch as bytes. In its default (text) mode SonicBoom
 * measures the batch it appends a line to with `Buffer.byteLength` on every line, which flattens the
 * growing string: each line copied the whole batch so far. Measured with the heap sampler on the bench's
 * info-level access log: 3.6 KB allocated per 280-byte line that way (BENCHMARKS.md). In byte mode each
 * line is encoded once and the batch is joined once, when it is written.
 */
export function logDestination(fd = 1): pino.DestinationStream & { flush(cb?: (err?: Error) => void): void; flushSync(): void } {
  const boom = pino.destination({ dest: fd, sync: false, minLength: BATCH_BYTES, contentMode: 'buffer' })
  const writeBytes = boom.write as unknown as (bytes: Buffer) => boolean
  boom.write = (line: string | Buffer) => writeBytes.call(boom, typeof line === 'string' ? Buffer.from(line) : line)
  return boom
}
