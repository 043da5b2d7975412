/**
 * The mock's OpenAI Files and Batch APIs (platform.openai.com/docs/api-reference/files and /batch), also under
 * Azure OpenAI's `/openai/…` (api-version in the query) and `/openai/v1/…` paths:
 *
 *   POST   /v1/files                    multipart/form-data: `file` and `purpose` (busboy parses the body)
 *   GET    /v1/files[?purpose=&limit=&after=&order=]
 *   GET    /v1/files/{id}               GET /v1/files/{id}/content      DELETE /v1/files/{id}
 *   POST   /v1/batches                  { input_file_id, endpoint, completion_window, metadata }
 *   GET    /v1/batches[?limit=&after=]  GET /v1/batches/{id}            POST /v1/batches/{id}/cancel
 *
 * Deterministic batches: created `validating`; the first retrieve (or list) runs them at once and they are
 * `completed`, with an output file of one line per request whose body is what the mock's chat completions
 * (or embeddings) would answer: the same text and token counts (text.ts), `usage` on every line. A batch
 * cancelled before that is `cancelling`, then `cancelled` at its next retrieve, and never runs.
 *
 * State (files, batches) belongs to one mock server: it is kept per server (keyed by the server's stats
 * object), never shared between servers. Every request needs a credential (`authorization` or `api-key`).
 */
import busboy from 'busboy';
import type { Ctx } from '../engine.ts';
import { after, elapsed, header, rid, sendJson } from '../engine.ts';
import { errorBody } from '../errors.ts';
import { budgetedCounter } from '../../tokens/count.ts';
import { completionText, countChatPromptTokens, fnv1a, makeCompletion, promptSeedText } from '../text.ts';
import type { MockStats } from '../llm.ts';
import type { MockDialect } from './index.ts';

type Json = Record<string, unknown>;

interface StoredFile {
  readonly id: string;
  readonly filename: string;
  readonly purpose: string;
  readonly createdAt: number;
  readonly content: Buffer;
}

interface StoredBatch {
  readonly id: string;
  readonly inputFileId: string;
  readonly endpoint: string;
  readonly completionWindow: string;
  readonly createdAt: number;
  readonly metadata: Json | null;
  status: 'validating' | 'completed' | 'cancelling' | 'cancelled' | 'failed';
  outputFileId: string | null;
  counts: { total: number; completed: number; failed: number };
  usage: { input_tokens: number; output_tokens: number } | null;
  completedAt: number | null;
  cancelledAt: number | null;
  cancellingAt: number | null;
}

interface FileState {
  readonly files: Map<string, StoredFile>;
  readonly batches: Map<string, StoredBatch>;
}

/** One store per mock server (its stats object is created once per server). */
const STATES = new WeakMap<MockStats, FileState>();
function stateOf(ctx: Ctx): FileState {
  let s = STATES.get(ctx.stats);
  if (!s) STATES.set(ctx.stats, (s = { files: new Map(), batches: new Map() }));
  return s;
}

const PATH_RE = /^(?:\/v1|\/openai|\/openai\/v1)\/(files|batches)(?:\/([^/]+))?(?:\/(content|cancel))?$/;
const PURPOSES = new Set(['assistants', 'batch', 'fine-tune', 'vision', 'user_data', 'evals']);
const BATCH_ENDPOINTS = new Set(['/v1/chat/completions', '/v1/embeddings', '/v1/completions', '/v1/responses', '/chat/completions', '/embeddings']);
const MAX_COMPLETION = 4096;

const now = (): number => Math.floor(Date.now() / 1000);

function fail(ctx: Ctx, status: number, message: string, param: string | null = null): void {
  sendJson(ctx, status, errorBody(status, message, { param, code: null }));
}

function fileObject(f: StoredFile): Json {
  return { id: f.id, object: 'file', bytes: f.content.length, created_at: f.createdAt, expires_at: null, filename: f.filename, purpose: f.purpose, status: 'processed', status_details: null };
}

function batchObject(b: StoredBatch): Json {
  return {
    id: b.id, object: 'batch', endpoint: b.endpoint, errors: null, input_file_id: b.inputFileId, completion_window: b.completionWindow,
    status: b.status, output_file_id: b.outputFileId, error_file_id: null, created_at: b.createdAt,
    in_progress_at: b.completedAt, expires_at: b.createdAt + 86_400, finalizing_at: b.completedAt, completed_at: b.completedAt,
    failed_at: null, expired_at: null, cancelling_at: b.cancellingAt, cancelled_at: b.cancelledAt,
    request_counts: b.counts, metadata: b.metadata, ...(b.usage ? { usage: { ...b.usage, total_tokens: b.usage.input_tokens + b.usage.output_tokens, input_tokens_details: { cached_tokens: 0 }, output_tokens_details: { reasoning_tokens: 0 } } } : {}),
  };
}

function list(items: Json[], query: URLSearchParams): Json {
  const limit = Math.min(Math.max(Number(query.get('limit') ?? 10_000) || 10_000, 1), 10_000);
  const afterId = query.get('after');
  let start = 0;
  if (afterId) start = items.findIndex((i) => i.id === afterId) + 1;
  const page = items.slice(start, start + limit);
  return { object: 'list', data: page, first_id: page[0]?.id ?? null, last_id: page.at(-1)?.id ?? null, has_more: start + limit < items.length };
}

/** The answer the mock's chat completions endpoint gives to one batch line's body (same text, same counts). */
function chatAnswer(body: Json, counter: (t: string) => number, defaultTokens: number): { body: Json; prompt: number; completion: number } {
  const messages = Array.isArray(body.messages) ? (body.messages as unknown[]) : [];
  const prompt = countChatPromptTokens(messages, body.tools, counter);
  const max = typeof body.max_completion_tokens === 'number' ? body.max_completion_tokens : typeof body.max_tokens === 'number' ? body.max_tokens : undefined;
  const count = Math.min(max ?? defaultTokens, MAX_COMPLETION);
  const comp = makeCompletion(fnv1a(promptSeedText(messages)), 0, count);
  return {
    prompt,
    completion: count,
    body: {
      id: 'chatcmpl-' + rid(12), object: 'chat.completion', created: now(), model: String(body.model ?? 'gpt-4o-mini'),
      choices: [{ index: 0, message: { role: 'assistant', content: completionText(comp), refusal: null, annotations: [] }, logprobs: null, finish_reason: max !== undefined && count >= max ? 'length' : 'stop' }],
      usage: { prompt_tokens: prompt, completion_tokens: count, total_tokens: prompt + count, prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 } },
      service_tier: 'default', system_fingerprint: 'fp_sluicemock',
    },
  };
}

/** Runs a batch: one output line per input line, in order. */
function runBatch(ctx: Ctx, state: FileState, b: StoredBatch): void {
  const input = state.files.get(b.inputFileId);
  const counter = budgetedCounter('gpt-4o', 16_384);
  const lines: string[] = [];
  let completed = 0;
  let failed = 0;
  let inTokens = 0;
  let outTokens = 0;
  for (const raw of (input?.content.toString('utf8') ?? '').split('\n')) {
    if (raw.trim() === '') continue;
    let req: Json;
    try {
      req = JSON.parse(raw) as Json;
    } catch {
      failed++;
      continue;
    }
    const reqBody = (req.body ?? {}) as Json;
    const answer = chatAnswer(reqBody, counter, ctx.opts.completionTokens ?? 16);
    inTokens += answer.prompt;
    outTokens += answer.completion;
    completed++;
    lines.push(JSON.stringify({ id: 'batch_req_' + rid(12), custom_id: req.custom_id ?? null, response: { status_code: 200, request_id: 'req_' + rid(16), body: answer.body }, error: null }));
  }
  const out: StoredFile = { id: 'file-' + rid(12), filename: `${b.id}_output.jsonl`, purpose: 'batch_output', createdAt: now(), content: Buffer.from(lines.map((l) => l + '\n').join(''), 'utf8') };
  state.files.set(out.id, out);
  b.status = 'completed';
  b.outputFileId = out.id;
  b.counts = { total: completed + failed, completed, failed };
  b.usage = { input_tokens: inTokens, output_tokens: outTokens };
  b.completedAt = now();
}

/** A retrieve moves a batch on: validating → completed (it runs now), cancelling → cancelled. */
function advance(ctx: Ctx, state: FileState, b: StoredBatch): void {
  if (b.status === 'validating') runBatch(ctx, state, b);
  else if (b.status === 'cancelling') {
    b.status = 'cancelled';
    b.cancelledAt = now();
  }
}

function upload(ctx: Ctx, raw: Buffer, state: FileState): void {
  const type = header(ctx.req, 'content-type') ?? '';
  if (!/^multipart\/form-data/i.test(type)) return fail(ctx, 400, "The request must be multipart/form-data with a 'file' and a 'purpose'.");
  let purpose: string | null = null;
  let file: { name: string; data: Buffer } | null = null;
  let parser: busboy.Busboy;
  try {
    parser = busboy({ headers: ctx.req.headers, limits: { files: 1, fields: 8 } });
  } catch {
    return fail(ctx, 400, 'The multipart body could not be parsed (no boundary).');
  }
  let broken = false;
  parser.on('field', (name, value) => { if (name === 'purpose') purpose = value; });
  parser.on('file', (name, stream, info) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', () => { broken = true; });
    stream.on('end', () => { if (name === 'file') file = { name: info.filename || 'upload', data: Buffer.concat(chunks) }; });
  });
  parser.on('error', () => { broken = true; });
  parser.on('close', () => {
    if (broken) return fail(ctx, 400, 'The multipart body is incomplete or malformed.');
    if (file === null) return fail(ctx, 400, "Missing required parameter: 'file'.", 'file');
    if (purpose === null || !PURPOSES.has(purpose)) return fail(ctx, 400, `Invalid value for 'purpose': ${JSON.stringify(purpose)}.`, 'purpose');
    const f: StoredFile = { id: 'file-' + rid(12), filename: (file as { name: string }).name, purpose, createdAt: now(), content: (file as { data: Buffer }).data };
    state.files.set(f.id, f);
    ctx.received.push({ path: ctx.req.url ?? '', body: { upload: f.id, bytes: f.content.length, purpose } });
    sendJson(ctx, 200, fileObject(f));
  });
  parser.end(raw);
}

function createBatch(ctx: Ctx, raw: Buffer, state: FileState): void {
  let body: Json;
  try {
    body = JSON.parse(raw.toString('utf8')) as Json;
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw new Error('not an object');
  } catch {
    return fail(ctx, 400, 'The request body must be a JSON object.');
  }
  const input = typeof body.input_file_id === 'string' ? state.files.get(body.input_file_id) : undefined;
  if (!input) return fail(ctx, 400, `Invalid 'input_file_id': ${JSON.stringify(body.input_file_id ?? null)}.`, 'input_file_id');
  if (typeof body.endpoint !== 'string' || !BATCH_ENDPOINTS.has(body.endpoint)) return fail(ctx, 400, `Invalid 'endpoint': ${JSON.stringify(body.endpoint ?? null)}.`, 'endpoint');
  if (body.completion_window !== '24h') return fail(ctx, 400, "Invalid 'completion_window': only '24h' is supported.", 'completion_window');
  const b: StoredBatch = {
    id: 'batch_' + rid(12), inputFileId: input.id, endpoint: body.endpoint, completionWindow: '24h', createdAt: now(),
    metadata: (body.metadata as Json | undefined) ?? null, status: 'validating', outputFileId: null,
    counts: { total: 0, completed: 0, failed: 0 }, usage: null, completedAt: null, cancelledAt: null, cancellingAt: null,
  };
  state.batches.set(b.id, b);
  sendJson(ctx, 200, batchObject(b));
}

function handle(ctx: Ctx, raw: Buffer, path: string): void {
  const method = ctx.req.method ?? 'GET';
  if (!header(ctx.req, 'authorization') && !header(ctx.req, 'api-key')) {
    return sendJson(ctx, 401, errorBody(401, 'You did not provide an API key (mock).'));
  }
  if (ctx.eff.fail !== undefined) {
    const status = ctx.eff.fail;
    return after(ctx, ctx.eff.latencyMs - elapsed(ctx), () => fail(ctx, status, `Mock error ${status}.`));
  }
  const m = PATH_RE.exec(path)!;
  const [, collection, id, action] = m as unknown as [string, 'files' | 'batches', string | undefined, string | undefined];
  const state = stateOf(ctx);
  const query = new URL(ctx.req.url ?? '/', 'http://mock').searchParams;
  const answer = (fn: () => void) => after(ctx, ctx.eff.latencyMs - elapsed(ctx), fn);
  if (collection === 'files') {
    if (id === undefined) {
      if (method === 'POST') return answer(() => upload(ctx, raw, state));
      if (method === 'GET') {
        const purpose = query.get('purpose');
        const items = [...state.files.values()].filter((f) => !purpose || f.purpose === purpose).map(fileObject);
        if (query.get('order') !== 'asc') items.reverse();
        return answer(() => sendJson(ctx, 200, list(items, query)));
      }
      return fail(ctx, 405, `Method ${method} not allowed.`);
    }
    const f = state.files.get(decodeURIComponent(id));
    if (!f) return answer(() => fail(ctx, 404, `No such File object: ${decodeURIComponent(id).slice(0, 64)}`, 'id'));
    if (action === 'content' && method === 'GET') {
      return answer(() => {
        ctx.res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(f.content.length), 'x-request-id': ctx.requestId });
        ctx.res.end(f.content);
      });
    }
    if (action === undefined && method === 'GET') return answer(() => sendJson(ctx, 200, fileObject(f)));
    if (action === undefined && method === 'DELETE') {
      state.files.delete(f.id);
      return answer(() => sendJson(ctx, 200, { id: f.id, object: 'file', deleted: true }));
    }
    return fail(ctx, 405, `Method ${method} not allowed.`);
  }
  if (id === undefined) {
    if (method === 'POST') return answer(() => createBatch(ctx, raw, state));
    if (method === 'GET') {
      for (const b of state.batches.values()) advance(ctx, state, b);
      return answer(() => sendJson(ctx, 200, list([...state.batches.values()].reverse().map(batchObject), query)));
    }
    return fail(ctx, 405, `Method ${method} not allowed.`);
  }
  const b = state.batches.get(decodeURIComponent(id));
  if (!b) return answer(() => fail(ctx, 404, `No batch found with id '${decodeURIComponent(id).slice(0, 64)}'.`, 'batch_id'));
  if (action === 'cancel' && method === 'POST') {
    if (b.status === 'validating') {
      b.status = 'cancelling';
      b.cancellingAt = now();
    } else if (b.status !== 'cancelling') return answer(() => fail(ctx, 409, `Cannot cancel a batch with status '${b.status}'.`));
    return answer(() => sendJson(ctx, 200, batchObject(b)));
  }
  if (action === undefined && method === 'GET') {
    advance(ctx, state, b);
    return answer(() => sendJson(ctx, 200, batchObject(b)));
  }
  return fail(ctx, 405, `Method ${method} not allowed.`);
}

export const openaiFilesDialect: MockDialect = {
  name: 'openai-files',
  matches: (_method, path) => PATH_RE.test(path),
  handle,
};
