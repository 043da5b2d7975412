/**
 * `sluice mock` — run the mock OpenAI-compatible LLM server.
 *
 *   --port N --host H --latency MS --ttft MS --tps N --fail RATE --status CODE --retry-after S
 *   --completion-tokens N --dims N
 */
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { startMockServer, type MockOptions } from './llm.ts';

const USAGE = `Usage: sluice mock [--port N] [--host H] [--latency MS] [--ttft MS] [--tps N]
                  [--fail RATE] [--status CODE] [--retry-after S] [--completion-tokens N] [--dims N]`;

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} expects a non-negative number, got ${JSON.stringify(v)}`);
  return n;
}

export async function runMockCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      latency: { type: 'string' },
      ttft: { type: 'string' },
      tps: { type: 'string' },
      fail: { type: 'string' },
      status: { type: 'string' },
      'retry-after': { type: 'string' },
      'completion-tokens': { type: 'string' },
      dims: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const opts: MockOptions & { port?: number; host?: string } = {
    port: num('port', values.port) ?? 8787,
    host: values.host ?? '127.0.0.1',
  };
  const set = <K extends keyof MockOptions>(k: K, v: MockOptions[K] | undefined) => {
    if (v !== undefined) opts[k] = v;
  };
  set('latencyMs', num('latency', values.latency));
  set('ttftMs', num('ttft', values.ttft));
  set('tokensPerSecond', num('tps', values.tps));
  const fail = num('fail', values.fail);
  if (fail !== undefined && fail > 1) throw new Error('--fail expects a rate between 0 and 1');
  set('failRate', fail);
  set('failStatus', num('status', values.status));
  set('retryAfterSeconds', num('retry-after', values['retry-after']));
  set('completionTokens', num('completion-tokens', values['completion-tokens']));
  set('embeddingDims', num('dims', values.dims));

  const server = await startMockServer(opts);
  console.log(`sluice mock LLM listening on ${server.url} (OpenAI base URL: ${server.url}/v1)`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void server.close().then(resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runMockCommand(process.argv.slice(2)).catch((e: unknown) => {
    console.error((e as Error).message);
    process.exitCode = 1;
  });
}
