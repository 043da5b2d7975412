/**
 * The mock's Amazon Bedrock Runtime InvokeModel API (the model's native body, for passthrough routes):
 * `POST /model/{modelId}/invoke` and `/invoke-with-response-stream`, with Anthropic Claude's Messages body
 * on Bedrock (`anthropic_version: bedrock-2023-05-31`, `messages`, `max_tokens`), as in the Bedrock user guide
 * ("Anthropic Claude Messages API" under model parameters).
 *
 * - Auth: the same as Converse (bedrock.ts): SigV4 verified by the independent ../sigv4-verify.ts over the
 *   exact bytes received, or the Bedrock API key as a bearer token; 403 in Bedrock's error shape otherwise.
 * - Answers: the Messages response with `usage` { input_tokens, output_tokens }, and the token counts in
 *   `x-amzn-bedrock-input-token-count` / `x-amzn-bedrock-output-token-count`, as Bedrock sends them.
 *   Streams: `chunk` events whose `bytes` are the base64 of Anthropic's stream events; the last one carries
 *   `amazon-bedrock-invocationMetrics` { inputTokenCount, outputTokenCount }.
 * - For tests of byte-exact forwarding: `x-mock-body-sha256` and `x-mock-body-bytes` name the SHA-256 and
 *   length of the body exactly as received.
 */
import { createHash } from 'node:crypto';
import { eventStreamCodec, encodeEvent } from '../../translate/helpers/aws-eventstream.ts';
import { after, elapsed, header, rid, type Ctx } from '../engine.ts';
import { countTextTokens, fnv1a, makeCompletion, completionText, pieceText } from '../text.ts';
import { verifySigV4 } from '../sigv4-verify.ts';
import { MOCK_AWS_KEYS, MOCK_BEDROCK_API_KEY } from './bedrock.ts';
import type { MockDialect } from './index.ts';

type Json = Record<string, unknown>;

const PATH_RE = /^\/model\/([^/]+)\/(invoke|invoke-with-response-stream)$/;

function awsError(ctx: Ctx, status: number, type: string, message: string): void {
  if (ctx.closed || ctx.res.headersSent) return;
  const body = JSON.stringify({ message });
  ctx.res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'x-amzn-requestid': ctx.requestId, 'x-amzn-errortype': `${type}:http://internal.amazon.com/coral/com.amazon.bedrock/` });
  ctx.res.end(body);
}

function authorized(ctx: Ctx, raw: Buffer, path: string): boolean {
  const auth = header(ctx.req, 'authorization') ?? '';
  if (auth.startsWith('Bearer ')) {
    if (auth.slice(7) === MOCK_BEDROCK_API_KEY) return true;
    awsError(ctx, 403, 'AccessDeniedException', 'Invalid API Key format: Must start with pre-defined prefix (mock).');
    return false;
  }
  const url = ctx.req.url ?? path;
  const q = url.indexOf('?');
  const verdict = verifySigV4({ method: ctx.req.method ?? 'POST', rawPath: path, rawQuery: q === -1 ? '' : url.slice(q + 1), headers: ctx.req.headers, body: raw }, (id) => MOCK_AWS_KEYS[id], 'bedrock');
  if (verdict.ok) return true;
  awsError(ctx, 403, verdict.errorType, verdict.message);
  return false;
}

function promptTokens(body: Json): { tokens: number; seed: string } {
  let tokens = 0;
  let seed = '';
  const text = (t: unknown) => { if (typeof t === 'string') { tokens += countTextTokens(t); seed += t; } };
  if (typeof body.system === 'string') text(body.system);
  else if (Array.isArray(body.system)) for (const b of body.system as Json[]) text(b?.text);
  for (const m of body.messages as Json[]) {
    seed += String(m.role) + '\u0000';
    if (typeof m.content === 'string') text(m.content);
    else if (Array.isArray(m.content)) for (const b of m.content as Json[]) text(b?.text);
  }
  return { tokens, seed };
}

function handle(ctx: Ctx, raw: Buffer, path: string): void {
  if (!authorized(ctx, raw, path)) return;
  if (ctx.eff.fail !== undefined) {
    const status = ctx.eff.fail;
    return after(ctx, ctx.eff.latencyMs - elapsed(ctx), () => awsError(ctx, status, status === 429 ? 'ThrottlingException' : status >= 500 ? 'InternalServerException' : 'ValidationException', `Mock error ${status}.`));
  }
  let body: Json;
  try {
    body = JSON.parse(raw.toString('utf8')) as Json;
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw new Error('not an object');
  } catch {
    return awsError(ctx, 400, 'ValidationException', 'Malformed input request, please reformat your input and try again (mock).');
  }
  if (!Array.isArray(body.messages) || body.messages.length === 0 || typeof body.max_tokens !== 'number' || typeof body.anthropic_version !== 'string') {
    return awsError(ctx, 400, 'ValidationException', 'Malformed input request: anthropic_version, max_tokens and messages are required (mock).');
  }
  ctx.received.push({ path, body });
  const m = PATH_RE.exec(path)!;
  const modelId = decodeURIComponent(m[1]!);
  const prompt = promptTokens(body);
  const count = Math.min(ctx.eff.completionTokensHeader ?? body.max_tokens, body.max_tokens, 4096);
  const comp = makeCompletion(fnv1a(prompt.seed + modelId), 0, count);
  const stop = count >= body.max_tokens ? 'max_tokens' : 'end_turn';
  const id = 'msg_bdrk_' + rid(12);
  const usage = { input_tokens: prompt.tokens, output_tokens: count };
  const echo = { 'x-mock-body-sha256': createHash('sha256').update(raw).digest('hex'), 'x-mock-body-bytes': String(raw.length), 'x-amzn-requestid': ctx.requestId };
  const counts = { 'x-amzn-bedrock-input-token-count': String(prompt.tokens), 'x-amzn-bedrock-output-token-count': String(count) };
  after(ctx, Math.max(ctx.eff.latencyMs, ctx.eff.ttftMs) - elapsed(ctx), () => {
    if (ctx.closed) return;
    ctx.stats.completionTokensSent += count;
    if (m[2] === 'invoke') {
      const out = JSON.stringify({ id, type: 'message', role: 'assistant', model: modelId, content: [{ type: 'text', text: completionText(comp) }], stop_reason: stop, stop_sequence: null, usage });
      ctx.res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(out)), ...echo, ...counts });
      ctx.res.end(out);
      return;
    }
    const codec = eventStreamCodec();
    const chunk = (event: Json) => encodeEvent(codec, 'chunk', { bytes: Buffer.from(JSON.stringify(event)).toString('base64') });
    const parts: Uint8Array[] = [
      chunk({ type: 'message_start', message: { id, type: 'message', role: 'assistant', model: modelId, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: prompt.tokens, output_tokens: 1 } } }),
      chunk({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
    ];
    for (let i = 0; i < count; i++) parts.push(chunk({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: pieceText(comp, i) } }));
    parts.push(chunk({ type: 'content_block_stop', index: 0 }));
    parts.push(chunk({ type: 'message_delta', delta: { stop_reason: stop, stop_sequence: null }, usage: { output_tokens: count } }));
    parts.push(chunk({ type: 'message_stop', 'amazon-bedrock-invocationMetrics': { inputTokenCount: prompt.tokens, outputTokenCount: count, invocationLatency: Math.round(elapsed(ctx)), firstByteLatency: Math.round(elapsed(ctx)) } }));
    ctx.res.writeHead(200, { 'content-type': 'application/vnd.amazon.eventstream', ...echo });
    // In two writes, so a relay that waits for the whole stream before forwarding would be visible to a test.
    const half = Math.ceil(parts.length / 2);
    ctx.res.write(Buffer.concat(parts.slice(0, half)));
    after(ctx, 5, () => ctx.res.end(Buffer.concat(parts.slice(half))));
  });
}

export const bedrockInvokeDialect: MockDialect = {
  name: 'bedrock-invoke',
  matches: (method, path) => method === 'POST' && PATH_RE.test(path),
  handle,
};
