/**
 * The mock's Amazon Bedrock Runtime dialect: `POST /model/{modelId}/converse` and `/converse-stream`.
 *
 * - Auth: AWS SigV4 (service `bedrock`, any region) verified against MOCK_AWS_KEYS by the independent
 *   verifier in ../sigv4-verify.ts, or a Bedrock API key as a bearer token (MOCK_BEDROCK_API_KEY). A bad or
 *   missing signature is a 403 in Bedrock's error shape (`x-amzn-errortype` header, `{"message"}` body).
 * - Streams: binary application/vnd.amazon.eventstream messages with correct CRCs (@smithy/eventstream-codec),
 *   the event sequence Bedrock sends: messageStart, content blocks (start / delta / stop), messageStop, metadata.
 * - Tool use when `toolChoice` is `any` / `tool`, or on `x-mock-tool-call: 1|<tool name>`; the input JSON is
 *   streamed in small pieces. Reasoning (reasoningContent with a signature) when
 *   additionalModelRequestFields asks for `thinking` or `reasoningConfig`.
 * - Replayed reasoningText blocks must carry the signature the mock issued for their text (400 otherwise).
 * - Usage: inputTokens (text tokens of system, messages and tools; 85 per image) with the part before the
 *   last cachePoint reported as cacheReadInputTokens instead; outputTokens counts every token produced.
 * - Faults (shared x-mock-* headers): x-mock-status → that status with the matching Bedrock exception;
 *   x-mock-error-after-tokens → an in-stream exception (x-mock-stream-exception names it, default
 *   modelStreamErrorException); x-mock-reset-after-tokens → TCP reset; x-mock-bad-crc-after-tokens: N → the
 *   message after N tokens goes out with a corrupted message CRC.
 */
import { createHash } from 'node:crypto';
import type { EventStreamCodec } from '@smithy/eventstream-codec';
import { eventStreamCodec, encodeEvent, encodeException } from '../../translate/helpers/aws-eventstream.ts';
import { after, elapsed, header, hnum, nonNeg, rid, type Ctx } from '../engine.ts';
import { countTextTokens, fnv1a, makeCompletion, pieceText, type Completion } from '../text.ts';
import { verifySigV4, type AwsTestKey } from '../sigv4-verify.ts';
import type { MockDialect } from './index.ts';

/** Known test credentials (the AWS documentation's example keys; never real ones). */
export const MOCK_AWS_KEYS: Readonly<Record<string, AwsTestKey>> = {
  AKIDEXAMPLE: { secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' },
  ASIAMOCKTEMPORARY: { secretAccessKey: 'tEmPoRaRySeCrEtKeYfOrThEsLuIcEmOcK00000', sessionToken: 'IQoJb3JpZ2luX2VjEMOCK//session+token/for=sluice' },
};
export const MOCK_BEDROCK_API_KEY = 'ABSKmockbedrockapikey';

type Json = Record<string, unknown>;

const PATH_RE = /^\/model\/([^/]+)\/(converse|converse-stream)$/;

const EXCEPTIONS: Record<number, [type: string, message: string]> = {
  400: ['ValidationException', 'Malformed input request (mock).'],
  403: ['AccessDeniedException', 'You don\'t have access to the model with the specified model ID (mock).'],
  404: ['ResourceNotFoundException', 'The requested model was not found (mock).'],
  408: ['ModelTimeoutException', 'The model took too long to respond (mock).'],
  424: ['ModelErrorException', 'The model returned an error (mock).'],
  429: ['ThrottlingException', 'Too many requests, please wait before trying again (mock).'],
  500: ['InternalServerException', 'The server encountered an internal error (mock).'],
  503: ['ServiceUnavailableException', 'The service is temporarily unable to handle the request (mock).'],
};

/** A Bedrock error: the type in `x-amzn-errortype` (restJson1), the message in the body. */
function sendAwsError(ctx: Ctx, status: number, type?: string, message?: string): void {
  if (ctx.closed || ctx.res.headersSent) return;
  const d = EXCEPTIONS[status] ?? [status >= 500 ? 'InternalServerException' : 'ValidationException', `Mock error ${status}.`];
  const body = JSON.stringify({ message: message ?? d[1] });
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    'x-amzn-requestid': ctx.requestId,
    'x-amzn-errortype': `${type ?? d[0]}:http://internal.amazon.com/coral/com.amazon.bedrock/`,
  };
  if ((status === 429 || status === 503) && ctx.eff.retryAfter !== undefined) headers['retry-after'] = String(Math.ceil(ctx.eff.retryAfter));
  ctx.res.writeHead(status, headers);
  ctx.res.end(body);
}

class Invalid extends Error {}

function checkAuth(ctx: Ctx, raw: Buffer, rawPath: string, rawQuery: string): boolean {
  const auth = header(ctx.req, 'authorization') ?? '';
  if (auth.startsWith('Bearer ')) {
    if (auth.slice(7) === MOCK_BEDROCK_API_KEY) return true;
    sendAwsError(ctx, 403, 'AccessDeniedException', 'Invalid API Key format: Must start with pre-defined prefix (mock).');
    return false;
  }
  const verdict = verifySigV4({ method: ctx.req.method ?? 'POST', rawPath, rawQuery, headers: ctx.req.headers, body: raw }, (id) => MOCK_AWS_KEYS[id], 'bedrock');
  if (verdict.ok) return true;
  sendAwsError(ctx, 403, verdict.errorType, verdict.message);
  return false;
}

// ---------------------------------------------------------------------------------------------
// Reading the request
// ---------------------------------------------------------------------------------------------

interface Counted { tokens: number; cached: number; seed: string }

/** Tokens of the prompt, the part before the last cachePoint, and the text the answer is seeded from. */
function countPrompt(body: Json): Counted {
  let tokens = 0;
  let cached = 0;
  let seed = '';
  const block = (b: Json): void => {
    if (typeof b.text === 'string') {
      tokens += countTextTokens(b.text);
      seed += b.text;
    } else if (b.image) tokens += 85;
    else if (b.toolUse) tokens += countTextTokens(JSON.stringify((b.toolUse as Json).input ?? {})) + countTextTokens(String((b.toolUse as Json).name ?? ''));
    else if (b.toolResult) for (const c of ((b.toolResult as Json).content as Json[] | undefined) ?? []) block(c);
    else if (b.reasoningContent) {
      const t = ((b.reasoningContent as Json).reasoningText as Json | undefined)?.text;
      if (typeof t === 'string') tokens += countTextTokens(t);
    } else if (b.cachePoint) cached = tokens;
  };
  for (const b of (body.system as Json[] | undefined) ?? []) block(b);
  for (const m of body.messages as Json[]) {
    seed += String(m.role) + '\u0000';
    for (const b of m.content as Json[]) block(b);
  }
  const tools = (body.toolConfig as Json | undefined)?.tools as Json[] | undefined;
  if (tools) for (const t of tools) {
    if (t.toolSpec) tokens += countTextTokens(JSON.stringify(t.toolSpec));
    else if (t.cachePoint) cached = tokens;
  }
  return { tokens, cached, seed };
}

function validate(body: Json): void {
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0) throw new Invalid('The model returned the following errors: messages: at least one message is required.');
  let usesTools = false;
  messages.forEach((m: Json, i) => {
    if (m?.role !== 'user' && m?.role !== 'assistant') throw new Invalid(`messages.${i}.role: must be user or assistant.`);
    if (i === 0 && m.role !== 'user') throw new Invalid('A conversation must start with a user message. Try again with a conversation that starts with a user message.');
    if (i > 0 && (messages[i - 1] as Json).role === m.role) throw new Invalid('A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.');
    if (!Array.isArray(m.content) || m.content.length === 0) throw new Invalid(`messages.${i}.content: at least one content block is required.`);
    for (const b of m.content as Json[]) {
      if (b.toolUse || b.toolResult) usesTools = true;
      // Like Claude on Bedrock, replayed reasoning must carry the signature it was issued with.
      const rt = (b.reasoningContent as Json | undefined)?.reasoningText as Json | undefined;
      if (rt && m.role === 'assistant' && rt.signature !== reasoningSignature(String(rt.text ?? ''))) throw new Invalid(`messages.${i}.content: the signature of a reasoning block is invalid or missing.`);
      const bytes = ((b.image as Json | undefined)?.source as Json | undefined)?.bytes;
      if (b.image && (typeof bytes !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(bytes))) throw new Invalid(`messages.${i}.content: image.source.bytes must be base64.`);
    }
  });
  if (usesTools && !body.toolConfig) throw new Invalid('The toolConfig field must be defined when using toolUse and toolResult content blocks.');
}

interface ToolPlan { name: string; input: Json }

/** The tool call to make, if the request demands one (toolChoice any/tool) or the x-mock-tool-call header asks. */
function toolPlan(ctx: Ctx, body: Json): ToolPlan | null {
  const cfg = body.toolConfig as Json | undefined;
  const specs = ((cfg?.tools as Json[] | undefined) ?? []).map((t) => t.toolSpec as Json | undefined).filter((s): s is Json => !!s);
  if (specs.length === 0) return null;
  const choice = cfg?.toolChoice as Json | undefined;
  const asked = header(ctx.req, 'x-mock-tool-call');
  let name: string | undefined;
  if (choice?.tool) name = String((choice.tool as Json).name);
  else if (asked && asked !== '0') name = specs.some((s) => s.name === asked) ? asked : String(specs[0]!.name);
  else if (choice?.any) name = String(specs[0]!.name);
  if (name === undefined) return null;
  const spec = specs.find((s) => s.name === name) ?? specs[0]!;
  const schema = ((spec.inputSchema as Json | undefined)?.json ?? {}) as Json;
  const input: Json = {};
  for (const [k, p] of Object.entries((schema.properties as Record<string, Json> | undefined) ?? {})) {
    const t = p?.type;
    input[k] = t === 'number' || t === 'integer' ? 42 : t === 'boolean' ? true : t === 'array' ? [] : t === 'object' ? {} : `mock ${k} value`;
  }
  return { name: String(spec.name), input };
}

function wantsReasoning(body: Json): boolean {
  const extra = body.additionalModelRequestFields as Json | undefined;
  return (extra?.thinking as Json | undefined)?.type === 'enabled' || (extra?.reasoningConfig as Json | undefined)?.type === 'enabled';
}

const REASONING = ['Let', ' me', ' think', ' about', ' this', ' first', '.'];
const reasoningSignature = (text: string): string => createHash('sha256').update('sluice-mock-thinking:' + text).digest('base64');

// ---------------------------------------------------------------------------------------------
// Answering
// ---------------------------------------------------------------------------------------------

interface Plan {
  readonly prompt: Counted;
  readonly tool: ToolPlan | null;
  readonly reasoning: boolean;
  readonly comp: Completion;
  readonly count: number;
  readonly stopReason: string;
  readonly toolUseId: string;
}

function outputTokens(plan: Plan): number {
  let n = plan.reasoning ? REASONING.length : 0;
  if (plan.tool) n += countTextTokens(plan.tool.name) + countTextTokens(JSON.stringify(plan.tool.input));
  else n += plan.count;
  return n;
}

function usage(plan: Plan): Json {
  const out = outputTokens(plan);
  const input = plan.prompt.tokens - plan.prompt.cached;
  return { inputTokens: input, outputTokens: out, totalTokens: input + out + plan.prompt.cached, cacheReadInputTokens: plan.prompt.cached, cacheWriteInputTokens: 0 };
}

function answerText(plan: Plan): string {
  let s = '';
  for (let i = 0; i < plan.count; i++) s += pieceText(plan.comp, i);
  return s;
}

function converse(ctx: Ctx, plan: Plan): void {
  const content: Json[] = [];
  if (plan.reasoning) {
    const text = REASONING.join('');
    content.push({ reasoningContent: { reasoningText: { text, signature: reasoningSignature(text) } } });
  }
  if (plan.tool) content.push({ toolUse: { toolUseId: plan.toolUseId, name: plan.tool.name, input: plan.tool.input } });
  else content.push({ text: answerText(plan) });
  const body = JSON.stringify({ output: { message: { role: 'assistant', content } }, stopReason: plan.stopReason, usage: usage(plan), metrics: { latencyMs: Math.round(elapsed(ctx)) } });
  after(ctx, Math.max(ctx.eff.latencyMs, ctx.eff.ttftMs) - elapsed(ctx), () => {
    if (ctx.closed) return;
    ctx.stats.completionTokensSent += outputTokens(plan);
    ctx.res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'x-amzn-requestid': ctx.requestId });
    ctx.res.end(body);
  });
}

/** The stream's messages after messageStart, each tagged with whether it carries one produced token. */
function streamMessages(codec: EventStreamCodec, plan: Plan): { bytes: Uint8Array; token: boolean }[] {
  const out: { bytes: Uint8Array; token: boolean }[] = [];
  const ev = (type: string, payload: Json, token = false) => out.push({ bytes: encodeEvent(codec, type, payload), token });
  let index = 0;
  if (plan.reasoning) {
    for (const piece of REASONING) ev('contentBlockDelta', { contentBlockIndex: index, delta: { reasoningContent: { text: piece } } }, true);
    ev('contentBlockDelta', { contentBlockIndex: index, delta: { reasoningContent: { signature: reasoningSignature(REASONING.join('')) } } });
    ev('contentBlockStop', { contentBlockIndex: index });
    index++;
  }
  if (plan.tool) {
    ev('contentBlockStart', { contentBlockIndex: index, start: { toolUse: { toolUseId: plan.toolUseId, name: plan.tool.name } } });
    // The input JSON in pieces of 4 characters, as Bedrock streams tool input in many small deltas.
    const json = JSON.stringify(plan.tool.input);
    for (let i = 0; i < json.length; i += 4) ev('contentBlockDelta', { contentBlockIndex: index, delta: { toolUse: { input: json.slice(i, i + 4) } } }, true);
    ev('contentBlockStop', { contentBlockIndex: index });
  } else {
    for (let i = 0; i < plan.count; i++) ev('contentBlockDelta', { contentBlockIndex: index, delta: { text: pieceText(plan.comp, i) } }, true);
    ev('contentBlockStop', { contentBlockIndex: index });
  }
  ev('messageStop', { stopReason: plan.stopReason });
  return out;
}

function converseStream(ctx: Ctx, plan: Plan): void {
  const { eff, res } = ctx;
  const codec = eventStreamCodec();
  const messages = streamMessages(codec, plan);
  const badCrcAfter = nonNeg(hnum(ctx.req, 'x-mock-bad-crc-after-tokens'));
  const exception = header(ctx.req, 'x-mock-stream-exception') ?? 'modelStreamErrorException';
  after(ctx, eff.latencyMs - elapsed(ctx), () => {
    res.writeHead(200, { 'content-type': 'application/vnd.amazon.eventstream', 'x-amzn-requestid': ctx.requestId });
    res.write(encodeEvent(codec, 'messageStart', { role: 'assistant' }));
    const firstAt = Math.max(eff.ttftMs, eff.latencyMs);
    const interval = eff.tps > 0 ? 1000 / eff.tps : 0;
    let next = 0;
    let sent = 0;
    const tick = (): void => {
      if (ctx.closed) return;
      const chunks: Uint8Array[] = [];
      while (next < messages.length) {
        const m = messages[next]!;
        if (m.token && interval > 0 && firstAt + sent * interval > elapsed(ctx) + 0.5) break;
        if (m.token && eff.resetAfter !== undefined && sent >= eff.resetAfter) {
          for (const c of chunks) res.write(c);
          ctx.selfReset = true;
          setTimeout(() => res.socket?.destroy(), 10);
          return;
        }
        if (m.token && eff.errorAfter !== undefined && sent >= eff.errorAfter) {
          chunks.push(encodeException(codec, exception, { message: `The model stream failed (mock ${exception}).` }));
          res.end(Buffer.concat(chunks));
          return;
        }
        let bytes = m.bytes;
        if (m.token && badCrcAfter !== undefined && sent === badCrcAfter) {
          bytes = Uint8Array.from(bytes);
          bytes[bytes.length - 1]! ^= 0xff;
        }
        chunks.push(bytes);
        next++;
        if (m.token) {
          sent++;
          ctx.stats.completionTokensSent++;
        }
      }
      if (next >= messages.length) {
        if (!eff.noUsage) chunks.push(encodeEvent(codec, 'metadata', { usage: usage(plan), metrics: { latencyMs: Math.round(elapsed(ctx)) } }));
        res.end(Buffer.concat(chunks));
        return;
      }
      if (chunks.length) res.write(Buffer.concat(chunks));
      after(ctx, firstAt + sent * interval - elapsed(ctx), tick);
    };
    after(ctx, firstAt - elapsed(ctx), tick);
  });
}

export const bedrockDialect: MockDialect = {
  name: 'bedrock',
  matches: (method, path) => method === 'POST' && PATH_RE.test(path),
  handle(ctx, raw, path) {
    const url = ctx.req.url ?? path;
    const q = url.indexOf('?');
    if (!checkAuth(ctx, raw, path, q === -1 ? '' : url.slice(q + 1))) return;
    if (ctx.eff.hang) return;
    if (ctx.eff.fail !== undefined) {
      const status = ctx.eff.fail;
      return after(ctx, ctx.eff.latencyMs - elapsed(ctx), () => sendAwsError(ctx, status));
    }
    let body: Json;
    try {
      const parsed: unknown = JSON.parse(raw.toString('utf8'));
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
      body = parsed as Json;
    } catch {
      return sendAwsError(ctx, 400, 'SerializationException', 'The request body is not valid JSON (mock).');
    }
    try {
      validate(body);
    } catch (e) {
      if (e instanceof Invalid) return sendAwsError(ctx, 400, 'ValidationException', e.message);
      throw e;
    }
    const m = PATH_RE.exec(path)!;
    const prompt = countPrompt(body);
    ctx.promptTokens = prompt.tokens;
    const maxTokens = (body.inferenceConfig as Json | undefined)?.maxTokens;
    const max = typeof maxTokens === 'number' ? maxTokens : undefined;
    const natural = ctx.eff.completionTokensHeader ?? max ?? ctx.eff.completionTokens;
    const count = max !== undefined ? Math.min(natural, max) : natural;
    const tool = toolPlan(ctx, body);
    const plan: Plan = {
      prompt,
      tool,
      reasoning: wantsReasoning(body),
      comp: makeCompletion(fnv1a(prompt.seed + m[1]!), 0, count),
      count,
      stopReason: tool ? 'tool_use' : max !== undefined && count >= max ? 'max_tokens' : 'end_turn',
      toolUseId: 'tooluse_' + rid(11),
    };
    if (m[2] === 'converse-stream') converseStream(ctx, plan);
    else converse(ctx, plan);
  },
};
