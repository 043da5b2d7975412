import { fstatSync } from 'node:fs'
import pino from 'pino'

/** Lines are handed to the file in batches of at least this many bytes (and by the gateway's 1 s flush). */
const BATCH_BYTES = 4096

/**
 * The gateway's log destination: pino's SonicBoom writing batches of at least 4 KiB, holding the batch as
 * bytes. In its default (text) mode SonicBoom measures the batch it appends a line to with `Buffer.byteLength`
 * on every line, which flattens the growing string: each line copied the whole batch so far. Measured with
 * the heap sampler on the bench's info-level access log: 3.6 KB allocated per 280-byte line that way
 * (BENCHMARKS.md). In byte mode each line is encoded once and the batch is joined once, when it is written.
 *
 * How a batch is written depends on what the descriptor is. A pipe, a socket or a terminal (a container's
 * stdout) can stall when its reader does, so those batches go to libuv's thread pool and a slow reader never
 * blocks the event loop. A regular file cannot stall that way: the kernel copies 4 KiB into its page cache in
 * microseconds, and handing that copy to the thread pool cost more than the copy (a pool thread woken per
 * batch, on the same core when the gateway is pinned: BENCHMARKS.md, "The access log"), so a file's batches
 * are written synchronously.
 */
export function logDestination(fd = 1): pino.DestinationStream & { flush(cb?: (err?: Error) => void): void; flushSync(): void } {
  const boom = pino.destination({ dest: fd, sync: isRegularFile(fd), minLength: BATCH_BYTES, contentMode: 'buffer' })
  const writeBytes = boom.write as unknown as (bytes: Buffer) => boolean
  boom.write = (line: string | Buffer) => writeBytes.call(boom, typeof line === 'string' ? Buffer.from(line) : line)
  return boom
}

/** Whether `fd` is a regular file (false for pipes, sockets, terminals, and a descriptor that cannot be read). */
export function isRegularFile(fd: number): boolean {
  try { return fstatSync(fd).isFile() } catch { return false }
}
