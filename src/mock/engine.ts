/**
 * What every mock dialect shares: per-request configuration (options overridden by x-mock-* headers), the
 * request context with its timers, and the writers. Dialects (OpenAI in llm.ts, the others in dialects/)
 * build their own wire format on top, from the one text and usage engine in text.ts.
 */
import type http from 'node:http';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { MockOptions, MockStats, ReceivedRequest } from './llm.ts';
import type { MockIdentity } from './identity.ts';

// ---------------------------------------------------------------------------------------------
// Per-request configuration (options overridden by x-mock-* headers)
// ---------------------------------------------------------------------------------------------

export interface Effective {
  latencyMs: number;
  ttftMs: number;
  tps: number;
  completionTokens: number;
  completionTokensHeader: number | undefined;
  embeddingDims: number;
  fail: number | undefined; // status to fail with, decided per request
  retryAfter: number | undefined;
  hang: boolean;
  resetAfter: number | undefined;
  errorAfter: number | undefined;
  noUsage: boolean;
  /** x-mock-inject-text / x-mock-inject-at: a completion that "turns bad" at a known token. */
  injectText: string | undefined;
  injectAt: number;
  /** x-mock-cached-tokens: report N of the prompt tokens (at most all) as served from the prompt cache. */
  cachedTokens: number;
}

export function header(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
export function hnum(req: http.IncomingMessage, name: string): number | undefined {
  const s = header(req, name);
  if (s === undefined || s.trim() === '') return undefined;
  const n = Number(s);
  return Number.isFinite(n) ? n : undefined;
}
export function hflag(req: http.IncomingMessage, name: string): boolean {
  const s = header(req, name);
  return s !== undefined && /^(1|true|yes|on)$/i.test(s.trim());
}
export const nonNeg = (n: number | undefined): number | undefined => (n === undefined || n < 0 ? undefined : n);

export function effective(req: http.IncomingMessage, o: MockOptions): Effective {
  const latencyMs = nonNeg(hnum(req, 'x-mock-latency-ms')) ?? o.latencyMs ?? 0;
  const ttftMs = nonNeg(hnum(req, 'x-mock-ttft-ms')) ?? o.ttftMs ?? latencyMs;
  const tps = nonNeg(hnum(req, 'x-mock-tps')) ?? o.tokensPerSecond ?? 0;
  const completionTokensHeader = nonNeg(hnum(req, 'x-mock-completion-tokens'));
  const statusH = hnum(req, 'x-mock-status');
  let fail: number | undefined;
  if (statusH !== undefined && statusH >= 400 && statusH <= 599) fail = Math.trunc(statusH);
  else {
    const rate = hnum(req, 'x-mock-fail-rate') ?? o.failRate ?? 0;
    if (rate > 0 && Math.random() < rate) fail = o.failStatus ?? 500;
  }
  const reset = nonNeg(hnum(req, 'x-mock-reset-after-tokens'));
  const errAfter = nonNeg(hnum(req, 'x-mock-error-after-tokens'));
  return {
    latencyMs,
    ttftMs,
    tps,
    completionTokens: Math.trunc(o.completionTokens ?? 16),
    completionTokensHeader: completionTokensHeader === undefined ? undefined : Math.trunc(completionTokensHeader),
    embeddingDims: Math.trunc(o.embeddingDims ?? 256),
    fail,
    retryAfter: nonNeg(hnum(req, 'x-mock-retry-after')) ?? o.retryAfterSeconds,
    hang: hflag(req, 'x-mock-hang'),
    resetAfter: reset === undefined ? undefined : Math.trunc(reset),
    errorAfter: errAfter === undefined ? undefined : Math.trunc(errAfter),
    noUsage: hflag(req, 'x-mock-no-usage'),
    injectText: header(req, 'x-mock-inject-text'),
    injectAt: Math.trunc(nonNeg(hnum(req, 'x-mock-inject-at')) ?? 0),
    cachedTokens: Math.trunc(nonNeg(hnum(req, 'x-mock-cached-tokens')) ?? 0),
  };
}

// ---------------------------------------------------------------------------------------------
// Request context, timers, writers
// ---------------------------------------------------------------------------------------------

export interface Ctx {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  /** The server's options, for dialects that have options of their own. */
  opts: MockOptions;
  /** Tokens issued by the server's identity endpoints. */
  identity: MockIdentity;
  stats: MockStats;
  eff: Effective;
  t0: number;
  closed: boolean;
  selfReset: boolean;
  timers: Set<NodeJS.Timeout>;
  requestId: string;
  promptTokens: number | undefined;
  /** The server's log of recent requests (tests read what a backend was sent). */
  received: ReceivedRequest[];
}

export const elapsed = (ctx: Ctx): number => performance.now() - ctx.t0;

/** Run fn after ms (synchronously when ms <= 0) unless the client went away. */
export function after(ctx: Ctx, ms: number, fn: () => void): void {
  if (ctx.closed) return;
  if (ms <= 0) {
    fn();
    return;
  }
  const t = setTimeout(() => {
    ctx.timers.delete(t);
    if (!ctx.closed) fn();
  }, ms);
  ctx.timers.add(t);
}

export const rid = (bytes: number): string => randomBytes(bytes).toString('hex');

export function commonHeaders(ctx: Ctx): Record<string, string> {
  const h: Record<string, string> = {
    'x-request-id': ctx.requestId,
    'openai-processing-ms': String(Math.round(elapsed(ctx))),
  };
  if (ctx.promptTokens !== undefined) h['x-mock-prompt-tokens'] = String(ctx.promptTokens);
  return h;
}

export function sendJson(ctx: Ctx, status: number, body: unknown, extra?: Record<string, string>): void {
  if (ctx.closed || ctx.res.headersSent) return;
  const s = JSON.stringify(body);
  ctx.res.writeHead(status, {
    ...commonHeaders(ctx),
    ...extra,
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(s)),
  });
  ctx.res.end(s);
}
