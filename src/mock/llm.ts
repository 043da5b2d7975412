/**
 * Mock OpenAI-compatible LLM server: chat completions, legacy completions, embeddings, Responses
 * API, models; Azure OpenAI deployment paths; fault injection via options or x-mock-* headers.
 * The Responses API is stateful as OpenAI's: stored responses (store not false) are continued by
 * previous_response_id (an unknown one is a 400 previous_response_not_found), read and deleted by
 * GET/DELETE /v1/responses/{id}; function calls follow tools.ts (see responses-state.ts).
 *
 * Deterministic output (see text.ts), token counts consistent with gpt-tokenizer (o200k_base).
 *
 * Per-request headers (override MockOptions):
 *   x-mock-status: CODE            answer CODE (400..599) with an OpenAI error body (after latency)
 *   x-mock-retry-after: S          with 429/503: `retry-after: ceil(S)` and `retry-after-ms: S*1000`
 *   x-mock-fail-rate: 0..1         probability of failing with options.failStatus (default 500)
 *   x-mock-latency-ms / x-mock-ttft-ms / x-mock-tps / x-mock-completion-tokens
 *   x-mock-hang: 1                 read the request, never answer (until the client goes away)
 *   x-mock-reset-after-tokens: N   streaming: TCP reset after N content tokens
 *   x-mock-error-after-tokens: N   streaming: in-stream error event after N content tokens, then end
 *   x-mock-no-usage: 1             streaming: never send the usage chunk
 *   x-mock-tool-call: NAME         answer with a call of the tool NAME (also a prompt marker, or tool_choice
 *                                  required / a named function): see tools.ts
 *   x-mock-inject-text: TEXT       chat: token number x-mock-inject-at (default 0) is TEXT instead (a
 *   x-mock-inject-at: N            completion that "turns bad" at a known point)
 * Also served: Azure AI Content Safety and OpenAI moderation (see content-safety.ts). Every request's
 * path and parsed body is kept in `received` (the last 100), so tests can see what a backend was sent.
 *   x-mock-cached-tokens: N        report N of the prompt tokens (at most all) as served from the prompt cache
 * Length: x-mock-completion-tokens, else max_tokens / max_completion_tokens / max_output_tokens,
 * else options.completionTokens (16); capped by the request's max; finish_reason "length" when the
 * cap is reached. Non-stream answers wait max(latency, ttft) + (tokens-1)/tps.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { budgetedCounter } from '../tokens/count.ts';
import {
  countChatPromptTokens,
  countTextTokens,
  completionText,
  pieceText,
  embed,
  embeddingToBase64,
  fnv1a,
  makeCompletion,
  pieceJson,
  promptSeedText,
  type Completion,
} from './text.ts';
import { errorBody } from './errors.ts';
import { after, commonHeaders, effective, elapsed, header, rid, sendJson, type Ctx, type Effective } from './engine.ts';
import { MOCK_DIALECTS } from './dialects/index.ts';
import { MockIdentity } from './identity.ts';
import { answerPieces, argumentPieces, callId, planToolCalls, toolCallTokens, toolEchoAnswer, type PlannedCall, type ToolRequest } from './tools.ts';
import { handleSafety, isSafetyPath } from './content-safety.ts';
import { keep, previousNotFound, responseNotFound, responsesState } from './responses-state.ts';
import { attachMockRealtime, type MockRealtime } from './realtime.ts';

export interface MockOptions {
  /** Delay before the response headers (non-stream: before the whole body); default 0. */
  latencyMs?: number;
  /** Streaming: delay (from request arrival) before the first content chunk; default = latencyMs. */
  ttftMs?: number;
  /** Streaming pace; 0/undefined = as fast as possible (still one event per token). */
  tokensPerSecond?: number;
  /** 0..1 probability to answer with failStatus. */
  failRate?: number;
  /** Status used by failRate; default 500. */
  failStatus?: number;
  /** When failing with 429/503, send `retry-after` (seconds) and `retry-after-ms`. */
  retryAfterSeconds?: number;
  /** Completion length when the request gives no max_tokens; default 16. */
  completionTokens?: number;
  /** Embedding dimensions when the request gives no `dimensions`; default 256. */
  embeddingDims?: number;
  /** The secret the managed-identity endpoint expects in `X-IDENTITY-HEADER`; default `sluice-mock-identity`. */
  identityHeader?: string;
  /** Lifetime of the bearer tokens the identity endpoints issue, in seconds; default 3600. */
  tokenTtlSeconds?: number;
  /** User-assigned identities (client ids) the managed-identity endpoint refuses, to test a token outage. */
  identityRefusedClientIds?: string[];
  /** Client credentials the Entra token endpoint accepts; default: any non-empty pair. */
  entraClient?: { clientId: string; clientSecret: string };
  /** The Anthropic dialect accepts only this `x-api-key` (default: any non-empty key). */
  anthropicApiKey?: string;
}

export interface MockStats {
  requests: number;
  active: number;
  aborted: number;
  completionTokensSent: number;
  /** Requests on Azure paths authorized by an Entra ID token this server issued. */
  entraRequests: number;
}

export interface ReceivedRequest {
  path: string;
  body: Record<string, unknown>;
}

export interface MockServer {
  url: string;
  port: number;
  close(): Promise<void>;
  stats: MockStats;
  /** Bearer tokens issued by the identity endpoints (counted, checked on the Azure paths). */
  identity: MockIdentity;
  /** The last 100 requests' paths and bodies, oldest first. */
  received: ReceivedRequest[];
  /** The Realtime WebSocket side (realtime.ts): its counters and session events. */
  realtime: MockRealtime;
}

export type MockHandler = ((req: http.IncomingMessage, res: http.ServerResponse) => void) & { stats: MockStats; identity: MockIdentity; received: ReceivedRequest[] };
const RECEIVED_MAX = 100;

export const MOCK_MODELS = ['gpt-4o-mini', 'gpt-4o', 'gpt-4.1-mini', 'gpt-4.1', 'o4-mini', 'text-embedding-3-small', 'text-embedding-3-large'];
const FP = 'fp_sluicemock';
const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' } as const;

function sendError(
  ctx: Ctx,
  status: number,
  message?: string,
  opts?: { type?: string; code?: string | null; param?: string | null },
): void {
  const extra: Record<string, string> = {};
  if ((status === 429 || status === 503) && ctx.eff.retryAfter !== undefined) {
    extra['retry-after'] = String(Math.ceil(ctx.eff.retryAfter));
    extra['retry-after-ms'] = String(Math.round(ctx.eff.retryAfter * 1000));
  }
  sendJson(ctx, status, errorBody(status, message, opts), extra);
}

class BadRequest extends Error {
  constructor(
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }
}

function missing(param: string): never {
  throw new BadRequest(`Missing required parameter: '${param}'.`, param, 'missing_required_parameter');
}

function optInt(body: Record<string, unknown>, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw new BadRequest(`Invalid '${name}': expected an integer between ${min} and ${max}.`, name, 'invalid_value');
  return v;
}

function usageObj(prompt: number, completion: number, cached = 0) {
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: Math.min(cached, prompt), audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
}

/**
 * Longest completion the mock generates per choice, whatever max_tokens asks: it builds its answers in
 * memory, and `max_tokens: 1e12` must not size an allocation (answers past it end with finish_reason "length").
 */
export const MOCK_MAX_COMPLETION_TOKENS = 32_768;
/** Largest request body the mock reads. */
const MOCK_MAX_BODY_BYTES = 32 * 1024 * 1024;
/** Prompt characters the mock counts exactly per request (the rest estimated), so no prompt stalls its process. */
const MOCK_EXACT_PROMPT_CHARS = 16_384;
const requestCounter = () => budgetedCounter('gpt-4o', MOCK_EXACT_PROMPT_CHARS);

/** Decide output length: header x-mock-completion-tokens > max_tokens > options.completionTokens. */
function planLength(eff: Effective, maxTokens: number | undefined): { count: number; truncated: boolean } {
  const natural = eff.completionTokensHeader ?? maxTokens ?? eff.completionTokens;
  const wanted = maxTokens !== undefined ? Math.min(natural, maxTokens) : natural;
  const count = Math.min(wanted, MOCK_MAX_COMPLETION_TOKENS);
  return { count, truncated: (maxTokens !== undefined && count >= maxTokens) || count < wanted };
}

/** Non-streaming responses take the latency plus the simulated generation time (when tps is set). */
function nonStreamDelay(eff: Effective, steps: number): number {
  const first = Math.max(eff.latencyMs, eff.ttftMs);
  return first + (eff.tps > 0 && steps > 1 ? ((steps - 1) * 1000) / eff.tps : 0);
}

// ---------------------------------------------------------------------------------------------
// Streaming engine
// ---------------------------------------------------------------------------------------------

interface StreamSpec {
  steps: number; // tokens per choice
  choices: number;
  head(): string; // events sent with the headers
  token(choice: number, step: number): string; // one content-token event
  tail(): string; // closing events (finish, usage, [DONE])
  error(): string; // in-stream error event (x-mock-error-after-tokens)
}

function resetConnection(ctx: Ctx): void {
  ctx.selfReset = true;
  const sock = ctx.res.socket as (Socket & { resetAndDestroy?: () => void }) | null;
  if (!sock) return;
  // Give already-written chunks a moment to reach the client, then RST the connection.
  setTimeout(() => {
    if (sock.destroyed) return;
    if (typeof sock.resetAndDestroy === 'function') sock.resetAndDestroy();
    else sock.destroy();
  }, 10);
}

function runStream(ctx: Ctx, spec: StreamSpec): void {
  const { eff, res, stats } = ctx;
  after(ctx, eff.latencyMs - elapsed(ctx), () => {
    res.writeHead(200, { ...commonHeaders(ctx), ...SSE_HEADERS });
    res.write(spec.head());
    const firstAt = Math.max(eff.ttftMs, eff.latencyMs);
    const interval = eff.tps > 0 ? 1000 / eff.tps : 0;
    let step = 0;
    let sent = 0;
    const tick = (): void => {
      if (ctx.closed) return;
      const now = elapsed(ctx);
      // All events due now are concatenated and written at once (one event per token, one write per tick).
      let buf = '';
      while (step < spec.steps) {
        if (interval > 0 && firstAt + step * interval > now + 0.5) break;
        for (let c = 0; c < spec.choices; c++) {
          if (eff.resetAfter !== undefined && sent >= eff.resetAfter) {
            if (buf) res.write(buf);
            return resetConnection(ctx);
          }
          if (eff.errorAfter !== undefined && sent >= eff.errorAfter) return void res.end(buf + spec.error());
          buf += spec.token(c, step);
          sent++;
          stats.completionTokensSent++;
        }
        step++;
      }
      if (step >= spec.steps) {
        if (eff.resetAfter !== undefined && sent >= eff.resetAfter) {
          if (buf) res.write(buf);
          return resetConnection(ctx);
        }
        if (eff.errorAfter !== undefined && sent >= eff.errorAfter) return void res.end(buf + spec.error());
        res.end(buf + spec.tail());
        return;
      }
      if (buf) res.write(buf);
      after(ctx, firstAt + step * interval - elapsed(ctx), tick);
    };
    after(ctx, firstAt - elapsed(ctx), tick);
  });
}

// ---------------------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------------------

type Body = Record<string, unknown>;

function requireModel(body: Body, deployment: string | undefined): string {
  if (typeof body.model === 'string' && body.model) return body.model;
  if (deployment) return deployment;
  return missing('model');
}

function chatCompletions(ctx: Ctx, body: Body, deployment: string | undefined): void {
  const model = requireModel(body, deployment);
  const messages = body.messages;
  if (!Array.isArray(messages) || messages.length === 0) missing('messages');
  const n = optInt(body, 'n', 1, 128) ?? 1;
  const maxTokens = optInt(body, 'max_completion_tokens', 1) ?? optInt(body, 'max_tokens', 1);
  const promptTokens = countChatPromptTokens(messages, body.tools, requestCounter());
  ctx.promptTokens = promptTokens;
  const seed = fnv1a(promptSeedText(messages));
  const calls = planToolCalls(ctx.req, openaiToolRequest(body, messages));
  if (calls.length) return chatToolCalls(ctx, body, model, promptTokens, seed, calls);
  const echo = toolEchoAnswer(ctx.req, chatToolResults(messages));
  if (echo !== null) return chatEcho(ctx, body, model, promptTokens, echo);
  const { count, truncated } = planLength(ctx.eff, maxTokens);
  const finish = truncated ? 'length' : 'stop';
  const comps: Completion[] = [];
  for (let i = 0; i < n; i++) comps.push(makeCompletion(seed, i, count));
  const id = 'chatcmpl-' + rid(12);
  const created = Math.floor(Date.now() / 1000);

  if (body.stream !== true) {
    after(ctx, nonStreamDelay(ctx.eff, count) - elapsed(ctx), () => {
      ctx.stats.completionTokensSent += count * n;
      sendJson(ctx, 200, {
        id,
        object: 'chat.completion',
        created,
        model,
        choices: comps.map((c, i) => ({
          index: i,
          message: { role: 'assistant', content: injectedText(ctx.eff, c), refusal: null, annotations: [] },
          logprobs: null,
          finish_reason: finish,
        })),
        usage: usageObj(promptTokens, count * n, ctx.eff.cachedTokens),
        service_tier: 'default',
        system_fingerprint: FP,
      });
    });
    return;
  }

  const so = body.stream_options as Body | undefined;
  const includeUsage = !!so && so.include_usage === true;
  const usageNull = includeUsage ? ',"usage":null' : '';
  const pre = `data: {"id":"${id}","object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(model)},"service_tier":"default","system_fingerprint":"${FP}","choices":[`;
  const tokPre: string[] = [];
  for (let i = 0; i < n; i++) tokPre.push(`${pre}{"index":${i},"delta":{"content":`);
  const tokSuf = `},"logprobs":null,"finish_reason":null}]${usageNull}}\n\n`;
  runStream(ctx, {
    steps: count,
    choices: n,
    head() {
      let s = '';
      for (let i = 0; i < n; i++)
        s += `${pre}{"index":${i},"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]${usageNull}}\n\n`;
      return s;
    },
    token: (c, step) => tokPre[c] + (ctx.eff.injectText !== undefined && step === ctx.eff.injectAt ? JSON.stringify(ctx.eff.injectText) : pieceJson(comps[c]!, step)) + tokSuf,
    tail() {
      let s = '';
      for (let i = 0; i < n; i++)
        s += `${pre}{"index":${i},"delta":{},"logprobs":null,"finish_reason":"${finish}"}]${usageNull}}\n\n`;
      if (includeUsage && !ctx.eff.noUsage) s += `${pre}],"usage":${JSON.stringify(usageObj(promptTokens, count * n, ctx.eff.cachedTokens))}}\n\n`;
      return s + 'data: [DONE]\n\n';
    },
    error: () => streamErrorData(),
  });
}

/** The request's tools and tool_choice in the neutral terms of tools.ts. */
function openaiToolRequest(body: Body, messages: unknown[]): ToolRequest {
  const tools = Array.isArray(body.tools)
    ? (body.tools as Body[]).flatMap((t) => {
        const fn = t?.function as Body | undefined;
        return t?.type === 'function' && fn && typeof fn.name === 'string' ? [{ name: fn.name, schema: (fn.parameters as Body | undefined) ?? {} }] : [];
      })
    : [];
  const c = body.tool_choice;
  const choice: ToolRequest['choice'] =
    c === 'required' ? 'any' : c === 'none' ? 'none' : c && typeof c === 'object' && typeof (c as any).function?.name === 'string' ? { name: (c as any).function.name } : 'auto';
  // The last turn that is not a system message (agents append system reminders after the user's text).
  const last = [...messages].reverse().find((m: any) => m?.role !== 'system' && m?.role !== 'developer') as Body | undefined;
  let lastUserText: string | null = null;
  if (last && last.role === 'user') {
    const content = last.content;
    lastUserText = typeof content === 'string' ? content : Array.isArray(content) ? content.map((p: any) => (typeof p?.text === 'string' ? p.text : '')).join('\n') : '';
  }
  return { tools, choice, lastUserText };
}

/** An answer that is tool calls (x-mock-tool-call, a prompt marker, or a tool_choice that demands one). */
function chatToolCalls(ctx: Ctx, body: Body, model: string, promptTokens: number, seed: number, calls: PlannedCall[]): void {
  const id = 'chatcmpl-' + rid(12);
  const created = Math.floor(Date.now() / 1000);
  const completion = toolCallTokens(calls);
  const ids = calls.map((_, i) => callId('call_', seed, i));
  if (body.stream !== true) {
    after(ctx, nonStreamDelay(ctx.eff, 1) - elapsed(ctx), () => {
      ctx.stats.completionTokensSent += completion;
      sendJson(ctx, 200, {
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [{
          index: 0,
          message: { role: 'assistant', content: null, refusal: null, annotations: [], tool_calls: calls.map((c, i) => ({ id: ids[i], type: 'function', function: { name: c.name, arguments: c.arguments } })) },
          logprobs: null,
          finish_reason: 'tool_calls',
        }],
        usage: usageObj(promptTokens, completion),
        service_tier: 'default',
        system_fingerprint: FP,
      });
    });
    return;
  }
  const so = body.stream_options as Body | undefined;
  const includeUsage = !!so && so.include_usage === true;
  const usageNull = includeUsage ? ',"usage":null' : '';
  const pre = `data: {"id":"${id}","object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(model)},"service_tier":"default","system_fingerprint":"${FP}","choices":[`;
  const ev = (delta: unknown, finish: string | null = null) => `${pre}{"index":0,"delta":${JSON.stringify(delta)},"logprobs":null,"finish_reason":${finish === null ? 'null' : `"${finish}"`}}]${usageNull}}\n\n`;
  // OpenAI's shape: the first fragment of each call has its id and name, later ones argument pieces only.
  const events: string[] = [];
  calls.forEach((c, i) => {
    events.push(ev({ tool_calls: [{ index: i, id: ids[i], type: 'function', function: { name: c.name, arguments: '' } }] }));
    for (const piece of argumentPieces(c.arguments)) events.push(ev({ tool_calls: [{ index: i, function: { arguments: piece } }] }));
  });
  runStream(ctx, {
    steps: events.length,
    choices: 1,
    head: () => ev({ role: 'assistant', content: null, refusal: null }),
    token: (_c, step) => events[step]!,
    tail() {
      let s = ev({}, 'tool_calls');
      if (includeUsage && !ctx.eff.noUsage) s += `${pre}],"usage":${JSON.stringify(usageObj(promptTokens, completion))}}\n\n`;
      return s + 'data: [DONE]\n\n';
    },
    error: () => streamErrorData(),
  });
}

/** The contents of the tool messages that end a chat (null when it ends otherwise). */
function chatToolResults(messages: unknown[]): string[] | null {
  const out: string[] = [];
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i] as Body | undefined;
    if (m?.role !== 'tool') break;
    const c = m.content;
    out.unshift(typeof c === 'string' ? c : Array.isArray(c) ? c.map((p: any) => (typeof p?.text === 'string' ? p.text : '')).join('') : '');
  }
  return out.length ? out : null;
}

/** A text answer quoting the tool results (x-mock-tool-echo), one choice, streamed in word pieces. */
function chatEcho(ctx: Ctx, body: Body, model: string, promptTokens: number, text: string): void {
  const id = 'chatcmpl-' + rid(12);
  const created = Math.floor(Date.now() / 1000);
  const completion = countTextTokens(text);
  const pieces = answerPieces(text);
  if (body.stream !== true) {
    after(ctx, nonStreamDelay(ctx.eff, pieces.length) - elapsed(ctx), () => {
      ctx.stats.completionTokensSent += completion;
      sendJson(ctx, 200, {
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null, annotations: [] }, logprobs: null, finish_reason: 'stop' }],
        usage: usageObj(promptTokens, completion),
        service_tier: 'default',
        system_fingerprint: FP,
      });
    });
    return;
  }
  const so = body.stream_options as Body | undefined;
  const includeUsage = !!so && so.include_usage === true;
  const usageNull = includeUsage ? ',"usage":null' : '';
  const pre = `data: {"id":"${id}","object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(model)},"service_tier":"default","system_fingerprint":"${FP}","choices":[`;
  const ev = (delta: unknown, finish: string | null = null) => `${pre}{"index":0,"delta":${JSON.stringify(delta)},"logprobs":null,"finish_reason":${finish === null ? 'null' : `"${finish}"`}}]${usageNull}}\n\n`;
  runStream(ctx, {
    steps: pieces.length,
    choices: 1,
    head: () => ev({ role: 'assistant', content: '', refusal: null }),
    token: (_c, step) => ev({ content: pieces[step] }),
    tail() {
      let s = ev({}, 'stop');
      if (includeUsage && !ctx.eff.noUsage) s += `${pre}],"usage":${JSON.stringify(usageObj(promptTokens, completion))}}\n\n`;
      return s + 'data: [DONE]\n\n';
    },
    error: () => streamErrorData(),
  });
}

/** A completion's text with token `injectAt` replaced by `x-mock-inject-text`. */
function injectedText(eff: Effective, c: Completion): string {
  if (eff.injectText === undefined) return completionText(c);
  let s = '';
  for (let i = 0; i < c.count; i++) s += i === eff.injectAt ? eff.injectText : pieceText(c, i);
  return s;
}

function streamErrorData(): string {
  return `data: ${JSON.stringify(errorBody(500, 'The server had an error while processing your request. (mock stream error)', { code: 'mock_stream_error' }))}\n\n`;
}

function completions(ctx: Ctx, body: Body, deployment: string | undefined): void {
  const model = requireModel(body, deployment);
  const p = body.prompt;
  if (p === undefined || p === null) missing('prompt');
  // Normalise prompt: string | string[] | number[] | number[][]
  let prompts: Array<string | number[]>;
  if (typeof p === 'string') prompts = [p];
  else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'number')) prompts = [p as number[]];
  else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'string' || (Array.isArray(x) && x.every((y) => typeof y === 'number'))))
    prompts = p as Array<string | number[]>;
  else throw new BadRequest("Invalid 'prompt': expected a string, an array of strings, or token arrays.", 'prompt', 'invalid_value');
  const n = optInt(body, 'n', 1, 128) ?? 1;
  const maxTokens = optInt(body, 'max_tokens', 1);
  let promptTokens = 0;
  const countPrompt = requestCounter();
  for (const x of prompts) promptTokens += typeof x === 'string' ? countPrompt(x) : x.length;
  ctx.promptTokens = promptTokens;
  const { count, truncated } = planLength(ctx.eff, maxTokens);
  const finish = truncated ? 'length' : 'stop';
  const comps: Completion[] = [];
  for (const x of prompts) {
    const seed = fnv1a(typeof x === 'string' ? x : x.join(','));
    for (let i = 0; i < n; i++) comps.push(makeCompletion(seed, i, count));
  }
  const total = comps.length;
  const id = 'cmpl-' + rid(12);
  const created = Math.floor(Date.now() / 1000);
  const modelJson = JSON.stringify(model);

  if (body.stream !== true) {
    after(ctx, nonStreamDelay(ctx.eff, count) - elapsed(ctx), () => {
      ctx.stats.completionTokensSent += count * total;
      sendJson(ctx, 200, {
        id,
        object: 'text_completion',
        created,
        model,
        choices: comps.map((c, i) => ({ text: completionText(c), index: i, logprobs: null, finish_reason: finish })),
        usage: usageObj(promptTokens, count * total, ctx.eff.cachedTokens),
        system_fingerprint: FP,
      });
    });
    return;
  }
  const so = body.stream_options as Body | undefined;
  const includeUsage = !!so && so.include_usage === true;
  const usageNull = includeUsage ? ',"usage":null' : '';
  const pre = `data: {"id":"${id}","object":"text_completion","created":${created},"choices":[`;
  const suf = `],"model":${modelJson},"system_fingerprint":"${FP}"${usageNull}}\n\n`;
  runStream(ctx, {
    steps: count,
    choices: total,
    head: () => '',
    token: (c, step) => `${pre}{"text":${pieceJson(comps[c]!, step)},"index":${c},"logprobs":null,"finish_reason":null}${suf}`,
    tail() {
      let s = '';
      for (let i = 0; i < total; i++) s += `${pre}{"text":"","index":${i},"logprobs":null,"finish_reason":"${finish}"}${suf}`;
      if (includeUsage && !ctx.eff.noUsage)
        s += `data: {"id":"${id}","object":"text_completion","created":${created},"choices":[],"model":${modelJson},"system_fingerprint":"${FP}","usage":${JSON.stringify(usageObj(promptTokens, count * total, ctx.eff.cachedTokens))}}\n\n`;
      return s + 'data: [DONE]\n\n';
    },
    error: () => streamErrorData(),
  });
}

function embeddings(ctx: Ctx, body: Body, deployment: string | undefined): void {
  const model = requireModel(body, deployment);
  const inp = body.input;
  if (inp === undefined || inp === null) missing('input');
  let inputs: Array<string | number[]>;
  if (typeof inp === 'string') inputs = [inp];
  else if (Array.isArray(inp) && inp.length > 0 && inp.every((x) => typeof x === 'number')) inputs = [inp as number[]];
  else if (Array.isArray(inp) && inp.length > 0 && inp.every((x) => typeof x === 'string' || (Array.isArray(x) && x.every((y) => typeof y === 'number'))))
    inputs = inp as Array<string | number[]>;
  else throw new BadRequest("Invalid 'input': expected a string, an array of strings, or token arrays.", 'input', 'invalid_value');
  const dims = optInt(body, 'dimensions', 1, 65536) ?? ctx.eff.embeddingDims;
  const fmt = body.encoding_format ?? 'float';
  if (fmt !== 'float' && fmt !== 'base64')
    throw new BadRequest("Invalid 'encoding_format': expected 'float' or 'base64'.", 'encoding_format', 'invalid_value');
  let promptTokens = 0;
  const countInput = requestCounter();
  for (const x of inputs) promptTokens += typeof x === 'string' ? countInput(x) : x.length;
  ctx.promptTokens = promptTokens;
  after(ctx, ctx.eff.latencyMs - elapsed(ctx), () => {
    sendJson(ctx, 200, {
      object: 'list',
      data: inputs.map((x, index) => {
        const v = embed(x, dims);
        return { object: 'embedding', index, embedding: fmt === 'base64' ? embeddingToBase64(v) : Array.from(v) };
      }),
      model,
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
    });
  });
}

/** Responses API input → chat-like messages (for token counting and seeding). */
function responsesMessages(body: Body): unknown[] {
  const msgs: unknown[] = [];
  if (typeof body.instructions === 'string' && body.instructions) msgs.push({ role: 'developer', content: body.instructions });
  const inp = body.input;
  if (typeof inp === 'string') msgs.push({ role: 'user', content: inp });
  else if (Array.isArray(inp)) {
    for (const item of inp) {
      if (!item || typeof item !== 'object') continue;
      const it = item as Body;
      if (typeof it.role === 'string') msgs.push({ role: it.role, content: it.content });
      else if (it.type === 'function_call_output') msgs.push({ role: 'tool', content: typeof it.output === 'string' ? it.output : JSON.stringify(it.output) });
      else if (it.type === 'function_call') msgs.push({ role: 'assistant', content: `${String(it.name ?? '')}${String(it.arguments ?? '')}` });
    }
  }
  return msgs;
}

/** The request's function tools in the neutral terms of tools.ts (Responses tools are flat: name, parameters). */
function responsesToolRequest(body: Body, messages: unknown[]): ToolRequest {
  const tools = Array.isArray(body.tools)
    ? (body.tools as Body[]).flatMap((t) => (t?.type === 'function' && typeof t.name === 'string' ? [{ name: t.name, schema: (t.parameters as Body | undefined) ?? {} }] : []))
    : [];
  const c = body.tool_choice as unknown;
  const choice: ToolRequest['choice'] =
    c === 'required' ? 'any' : c === 'none' ? 'none' : c && typeof c === 'object' && typeof (c as Body).name === 'string' ? { name: (c as Body).name as string } : 'auto';
  const last = [...messages].reverse().find((m: any) => m?.role !== 'system' && m?.role !== 'developer') as Body | undefined;
  let lastUserText: string | null = null;
  if (last && last.role === 'user') {
    const content = last.content;
    lastUserText = typeof content === 'string' ? content : Array.isArray(content) ? content.map((p: any) => (typeof p?.text === 'string' ? p.text : '')).join('\n') : '';
  }
  return { tools, choice, lastUserText };
}

/** The outputs of the function calls that end a Responses input (null when it ends otherwise). */
function responsesToolResults(body: Body): string[] | null {
  if (!Array.isArray(body.input)) return null;
  const out: string[] = [];
  for (let i = body.input.length - 1; i >= 0; i--) {
    const it = body.input[i] as Body | undefined;
    if (it?.type !== 'function_call_output') break;
    const o = it.output;
    out.unshift(typeof o === 'string' ? o : Array.isArray(o) ? o.map((p: any) => (typeof p?.text === 'string' ? p.text : '')).join('') : '');
  }
  return out.length ? out : null;
}

function responses(ctx: Ctx, body: Body, deployment: string | undefined): void {
  const model = requireModel(body, deployment);
  if ((body.input === undefined || body.input === null) && typeof body.previous_response_id !== 'string') missing('input');
  const state = responsesState(ctx.received);
  // previous_response_id: the conversation this server stored continues (instructions are not carried over).
  let earlier: readonly unknown[] = [];
  if (typeof body.previous_response_id === 'string') {
    const prev = state.get(body.previous_response_id);
    if (!prev) return after(ctx, ctx.eff.latencyMs - elapsed(ctx), () => sendJson(ctx, 400, previousNotFound(body.previous_response_id as string)));
    earlier = prev.messages;
  }
  const own = responsesMessages(body);
  const msgs = [...earlier, ...own];
  const promptTokens = countChatPromptTokens(msgs, body.tools, requestCounter());
  ctx.promptTokens = promptTokens;
  const maxOut = optInt(body, 'max_output_tokens', 1);
  const seed = fnv1a(promptSeedText(msgs));
  const calls = planToolCalls(ctx.req, responsesToolRequest(body, msgs));
  // x-mock-tool-echo: a turn ending with function call outputs is answered by quoting them (tools.ts).
  const echo = calls.length ? null : toolEchoAnswer(ctx.req, responsesToolResults(body));
  const echoPieces = echo !== null ? answerPieces(echo) : [];
  const planned = planLength(ctx.eff, maxOut);
  const count = calls.length ? 0 : echo !== null ? echoPieces.length : planned.count;
  const truncated = calls.length || echo !== null ? false : planned.truncated;
  const textOf = (): string => (echo !== null ? echo : completionText(comp));
  const comp = makeCompletion(seed, 0, count);
  const id = 'resp_' + rid(24);
  const msgId = 'msg_' + rid(24);
  const createdAt = Math.floor(Date.now() / 1000);
  const outputTokens = calls.length ? toolCallTokens(calls) : echo !== null ? countTextTokens(echo) : count;
  const usage = {
    input_tokens: promptTokens,
    input_tokens_details: { cached_tokens: Math.min(ctx.eff.cachedTokens, promptTokens) },
    output_tokens: outputTokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: promptTokens + outputTokens,
  };
  const callItems = calls.map((c, i) => ({ id: 'fc_' + rid(24), type: 'function_call', status: 'completed', arguments: c.arguments, call_id: callId('call_', seed, i), name: c.name }));
  const remember = (output: unknown[], response: Body) => {
    if (body.store === false) return;
    const said = calls.length ? calls.map((c) => `${c.name}${c.arguments}`).join('') : textOf();
    keep(state, id, { messages: [...msgs.filter((m: any) => m?.role !== 'developer' || !own.includes(m)), { role: 'assistant', content: said }], response: { ...response, output } });
  };
  const base = (status: string, output: unknown[], u: unknown) => ({
    id,
    object: 'response',
    created_at: createdAt,
    status,
    background: false,
    error: null,
    incomplete_details: status === 'incomplete' ? { reason: 'max_output_tokens' } : null,
    instructions: body.instructions ?? null,
    max_output_tokens: maxOut ?? null,
    max_tool_calls: null,
    model,
    output,
    parallel_tool_calls: true,
    previous_response_id: body.previous_response_id ?? null,
    reasoning: { effort: null, summary: null },
    service_tier: 'default',
    store: body.store ?? true,
    temperature: typeof body.temperature === 'number' ? body.temperature : 1,
    text: { format: { type: 'text' }, verbosity: 'medium' },
    tool_choice: body.tool_choice ?? 'auto',
    tools: Array.isArray(body.tools) ? body.tools : [],
    top_p: typeof body.top_p === 'number' ? body.top_p : 1,
    truncation: 'disabled',
    usage: u,
    user: null,
    metadata: (body.metadata as object | undefined) ?? {},
  });
  const finalStatus = truncated ? 'incomplete' : 'completed';
  const outPart = (text: string) => ({ type: 'output_text', annotations: [], logprobs: [], text });
  const message = (text: string, status: string) => ({ id: msgId, type: 'message', status, content: [outPart(text)], role: 'assistant' });

  if (body.stream !== true) {
    after(ctx, nonStreamDelay(ctx.eff, Math.max(count, 1)) - elapsed(ctx), () => {
      ctx.stats.completionTokensSent += outputTokens;
      const output = calls.length ? callItems : [message(textOf(), finalStatus)];
      const answer = base(finalStatus, output, usage);
      remember(output, answer);
      sendJson(ctx, 200, answer);
    });
    return;
  }
  if (calls.length) return responsesCallStream(ctx, base, callItems, usage, remember);

  let seq = 0;
  const ev = (type: string, rest: string): string => `event: ${type}\ndata: {"type":"${type}","sequence_number":${seq++}${rest}}\n\n`;
  const finalAnswer = (text: string) => {
    const output = [message(text, finalStatus)];
    const answer = base(finalStatus, output, usage);
    remember(output, answer);
    return answer;
  };
  const loc = `"item_id":"${msgId}","output_index":0,"content_index":0`;
  runStream(ctx, {
    steps: count,
    choices: 1,
    head() {
      const r = JSON.stringify(base('in_progress', [], null));
      return (
        ev('response.created', `,"response":${r}`) +
        ev('response.in_progress', `,"response":${r}`) +
        ev('response.output_item.added', `,"output_index":0,"item":${JSON.stringify({ id: msgId, type: 'message', status: 'in_progress', content: [], role: 'assistant' })}`) +
        ev('response.content_part.added', `,${loc},"part":${JSON.stringify(outPart(''))}`)
      );
    },
    token: (_c, step) => ev('response.output_text.delta', `,${loc},"delta":${echo !== null ? JSON.stringify(echoPieces[step]) : pieceJson(comp, step)},"logprobs":[]`),
    tail() {
      const text = textOf();
      const done = finalStatus === 'completed' ? 'response.completed' : 'response.incomplete';
      return (
        ev('response.output_text.done', `,${loc},"text":${JSON.stringify(text)},"logprobs":[]`) +
        ev('response.content_part.done', `,${loc},"part":${JSON.stringify(outPart(text))}`) +
        ev('response.output_item.done', `,"output_index":0,"item":${JSON.stringify(message(text, finalStatus))}`) +
        ev(done, `,"response":${JSON.stringify(finalAnswer(text))}`)
      );
    },
    error: () =>
      ev('error', `,"code":"server_error","message":"The server had an error while processing your request. (mock stream error)","param":null`),
  });
}

/** A streamed answer that is function calls: each call's item, its argument pieces, then response.completed. */
function responsesCallStream(ctx: Ctx, base: (status: string, output: unknown[], u: unknown) => Body, items: Body[], usage: unknown, remember: (output: unknown[], response: Body) => void): void {
  let seq = 0;
  const ev = (type: string, payload: Body): string => `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: seq++, ...payload })}\n\n`;
  const events: string[] = [];
  items.forEach((it, i) => {
    events.push(ev('response.output_item.added', { output_index: i, item: { ...it, status: 'in_progress', arguments: '' } }));
    for (const piece of argumentPieces(it.arguments as string)) events.push(ev('response.function_call_arguments.delta', { item_id: it.id, output_index: i, delta: piece }));
    events.push(ev('response.function_call_arguments.done', { item_id: it.id, output_index: i, name: it.name, arguments: it.arguments }));
    events.push(ev('response.output_item.done', { output_index: i, item: it }));
  });
  runStream(ctx, {
    steps: events.length,
    choices: 1,
    head() {
      const r = base('in_progress', [], null);
      return ev('response.created', { response: r }) + ev('response.in_progress', { response: r });
    },
    token: (_c, step) => events[step]!,
    tail() {
      const answer = base('completed', items, usage);
      remember(items, answer);
      return ev('response.completed', { response: answer });
    },
    error: () => ev('error', { code: 'server_error', message: 'The server had an error while processing your request. (mock stream error)', param: null }),
  });
}

/** GET / DELETE of a response this server stored. */
function storedResponse(ctx: Ctx, method: string, id: string): void {
  const state = responsesState(ctx.received);
  const r = state.get(id);
  after(ctx, ctx.eff.latencyMs - elapsed(ctx), () => {
    if (!r) return sendJson(ctx, 404, responseNotFound(id));
    if (method === 'DELETE') {
      state.delete(id);
      return sendJson(ctx, 200, { id, object: 'response', deleted: true });
    }
    sendJson(ctx, 200, r.response);
  });
}

function modelObj(id: string) {
  return { id, object: 'model', created: 1715367049, owned_by: 'sluice-mock' };
}

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

type Kind = 'chat' | 'completions' | 'embeddings' | 'responses' | 'models' | 'model' | 'stored-response';
interface Route {
  kind: Kind;
  deployment?: string;
  modelId?: string;
  responseId?: string;
}

const AZURE_RE = /^\/openai\/deployments\/([^/]+)\/(chat\/completions|completions|embeddings|responses)$/;
const POST_KINDS: Record<string, Kind> = {
  '/v1/chat/completions': 'chat',
  '/v1/completions': 'completions',
  '/v1/embeddings': 'embeddings',
  '/v1/responses': 'responses',
};
const AZURE_KINDS: Record<string, Kind> = {
  'chat/completions': 'chat',
  completions: 'completions',
  embeddings: 'embeddings',
  responses: 'responses',
};

function route(method: string, rawPath: string): Route | undefined {
  let path = rawPath.length > 1 && rawPath.endsWith('/') ? rawPath.slice(0, -1) : rawPath;
  const az = AZURE_RE.exec(path);
  if (az) return method === 'POST' ? { kind: AZURE_KINDS[az[2]!]!, deployment: decodeURIComponent(az[1]!) } : undefined;
  if (path.startsWith('/openai/v1/')) path = path.slice(7); // Azure OpenAI v1 API
  if (method === 'POST') {
    const k = POST_KINDS[path];
    return k ? { kind: k } : undefined;
  }
  const stored = /^\/v1\/responses\/([A-Za-z0-9_-]{1,256})$/.exec(path);
  if (stored && (method === 'GET' || method === 'DELETE')) return { kind: 'stored-response', responseId: stored[1]! };
  if (method === 'GET') {
    if (path === '/v1/models') return { kind: 'models' };
    if (path.startsWith('/v1/models/')) return { kind: 'model', modelId: decodeURIComponent(path.slice(11)) };
  }
  return undefined;
}

/**
 * Azure paths take an `api-key`, or an Entra ID bearer: one this server's identity endpoints issued
 * (dialects/entra.ts) must be known and unexpired, as Azure checks its tokens; other bearers (keys sent by
 * OpenAI-style clients) are accepted as before.
 */
function azureAuthorized(ctx: Ctx): boolean {
  const auth = header(ctx.req, 'authorization');
  const token = auth?.startsWith('Bearer ') ? auth.slice(7) : null;
  if (token === null || !token.startsWith('mock-entra')) return true;
  const state = ctx.identity.check(token);
  if (state === 'valid') {
    ctx.stats.entraRequests++;
    return true;
  }
  sendJson(ctx, 401, { error: { code: '401', message: `Unauthorized. Access token is missing, invalid, audience is incorrect (https://cognitiveservices.azure.com), or have expired.` } });
  return false;
}

function dispatch(ctx: Ctx, raw: Buffer): void {
  const { req, eff } = ctx;
  const method = req.method ?? 'GET';
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  for (const d of MOCK_DIALECTS) if (d.matches(method, path)) return d.handle(ctx, raw, path);
  const r = route(method, path);
  const safety = method === 'POST' && isSafetyPath(path);
  if (!r && !safety) return sendError(ctx, 404, `Invalid URL (${method} ${path})`, { code: null });
  if (path.startsWith('/openai/') && !azureAuthorized(ctx)) return;
  let body: Body = {};
  if (method === 'POST') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.toString('utf8'));
    } catch {
      return sendError(
        ctx,
        400,
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
        { code: null },
      );
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
      return sendError(ctx, 400, 'The request body must be a JSON object.', { code: null });
    body = parsed as Body;
    ctx.received.push({ path, body });
    if (ctx.received.length > RECEIVED_MAX) ctx.received.shift();
  }
  if (eff.hang) return; // accept and never answer; 'close' handler accounts for the abort
  if (eff.fail !== undefined) {
    const status = eff.fail;
    return after(ctx, eff.latencyMs - elapsed(ctx), () => sendError(ctx, status));
  }
  if (safety || !r) return after(ctx, eff.latencyMs - elapsed(ctx), () => handleSafety(path, req, body, (status, b) => sendJson(ctx, status, b)));
  try {
    switch (r.kind) {
      case 'chat':
        return chatCompletions(ctx, body, r.deployment);
      case 'completions':
        return completions(ctx, body, r.deployment);
      case 'embeddings':
        return embeddings(ctx, body, r.deployment);
      case 'responses':
        return responses(ctx, body, r.deployment);
      case 'models':
        return after(ctx, eff.latencyMs - elapsed(ctx), () =>
          sendJson(ctx, 200, { object: 'list', data: MOCK_MODELS.map(modelObj) }),
        );
      case 'model':
        return after(ctx, eff.latencyMs - elapsed(ctx), () => sendJson(ctx, 200, modelObj(r.modelId!)));
      case 'stored-response':
        return storedResponse(ctx, method, r.responseId!);
    }
  } catch (e) {
    if (e instanceof BadRequest) return sendError(ctx, 400, e.message, { param: e.param, code: e.code });
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

export function createMockHandler(opts: MockOptions = {}): MockHandler {
  const stats: MockStats = { requests: 0, active: 0, aborted: 0, completionTokensSent: 0, entraRequests: 0 };
  const identity = new MockIdentity();
  const received: ReceivedRequest[] = [];
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    stats.requests++;
    stats.active++;
    const ctx: Ctx = {
      req,
      res,
      opts,
      identity,
      stats,
      eff: effective(req, opts),
      t0: performance.now(),
      closed: false,
      selfReset: false,
      timers: new Set(),
      requestId: header(req, 'x-request-id') || 'req_' + rid(16),
      promptTokens: undefined,
      received,
    };
    res.on('close', () => {
      stats.active--;
      ctx.closed = true;
      for (const t of ctx.timers) clearTimeout(t);
      ctx.timers.clear();
      if (!res.writableFinished && !ctx.selfReset) stats.aborted++;
    });
    const chunks: Buffer[] = [];
    let bytesRead = 0;
    let tooLarge = false;
    req.on('data', (c: Buffer) => {
      if (tooLarge) return;
      bytesRead += c.length;
      // The mock keeps what it reads in memory: past the cap the body is dropped and refused, not stored.
      if (bytesRead > MOCK_MAX_BODY_BYTES) { tooLarge = true; chunks.length = 0; return; }
      chunks.push(c);
    });
    req.on('error', () => {});
    req.on('end', () => {
      if (ctx.closed) return;
      if (tooLarge) return sendError(ctx, 413, `Mock: request bodies are limited to ${MOCK_MAX_BODY_BYTES} bytes.`);
      try {
        dispatch(ctx, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
      } catch (e) {
        if (!res.headersSent) sendError(ctx, 500, `Mock internal error: ${(e as Error).message}`);
        else res.destroy();
      }
    });
  };
  return Object.assign(handler, { stats, identity, received });
}

export async function startMockServer(opts: MockOptions & { port?: number; host?: string } = {}): Promise<MockServer> {
  const { port = 0, host = '127.0.0.1', ...rest } = opts;
  const handler = createMockHandler(rest);
  const server = http.createServer({ noDelay: true }, handler);
  const realtime = attachMockRealtime(server, { completionTokens: rest.completionTokens, tokensPerSecond: rest.tokensPerSecond }, handler.identity);
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const urlHost = addr.address.includes(':') ? `[${addr.address}]` : addr.address;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${addr.port}`,
    port: addr.port,
    stats: handler.stats,
    identity: handler.identity,
    received: handler.received,
    realtime,
    close() {
      closing ??= new Promise<void>((resolve) => {
        realtime.close();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
