import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import OpenAI, { AzureOpenAI } from 'openai';
import { encode } from 'gpt-tokenizer';
import { startMockServer, createMockHandler, type MockServer } from '../src/mock/llm.ts';
import {
  PIECES,
  SENTENCE_STARTS,
  completionText,
  embed,
  makeCompletion,
} from '../src/mock/text.ts';

let server: MockServer;
let client: OpenAI;

before(async () => {
  server = await startMockServer({ port: 0 });
  client = new OpenAI({ baseURL: server.url + '/v1', apiKey: 'x', maxRetries: 0 });
});
after(async () => {
  await server.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await sleep(5);
  }
}
const post = (path: string, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal) =>
  fetch(server.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal,
  });

/** Parse an SSE body into {event, data} records. */
function parseSse(text: string): Array<{ event: string | null; data: string }> {
  return text
    .split('\n\n')
    .filter((b) => b.trim())
    .map((block) => {
      let event: string | null = null;
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      return { event, data: data.join('\n') };
    });
}

const cosine = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let d = 0;
  for (let i = 0; i < a.length; i++) d += a[i]! * b[i]!;
  return d; // vectors are L2-normalised
};

// ------------------------------------------------------------------------------------------------

test('text: every piece is one token and generated text re-tokenizes to exactly its length', () => {
  for (const p of PIECES) assert.equal(encode(p).length, 1, JSON.stringify(p));
  for (let s = 0; s < SENTENCE_STARTS.length; s++) {
    for (const count of [...Array.from({ length: 300 }, (_, i) => i), 333, 1000]) {
      const c = makeCompletion(s, 0, count);
      assert.equal(encode(completionText(c)).length, count, `start ${s} count ${count}`);
    }
  }
});

test('chat non-stream via SDK: shape, usage consistent with tokenizer, deterministic', async () => {
  const messages = [
    { role: 'system' as const, content: 'You are helpful.' },
    { role: 'user' as const, content: 'Tell me about rivers.' },
  ];
  const r = await client.chat.completions.create({ model: 'gpt-4o-mini', messages });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.model, 'gpt-4o-mini');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.choices.length, 1);
  const ch = r.choices[0]!;
  assert.equal(ch.message.role, 'assistant');
  assert.equal(ch.finish_reason, 'stop');
  const text = ch.message.content!;
  assert.equal(r.usage!.completion_tokens, 16);
  assert.equal(encode(text).length, r.usage!.completion_tokens);
  // prompt tokens: cookbook formula for gpt-4o (3/message + role + content, +3 priming)
  // Fixed, by hand (o200k_base): 'system' 1, 'You are helpful.' You| are| helpful|. = 4, 'user' 1,
  // 'Tell me about rivers.' Tell| me| about| rivers|. = 5: 3 + (3 + 1 + 4) + (3 + 1 + 5) = 20.
  assert.equal(r.usage!.prompt_tokens, 20);
  assert.equal(r.usage!.total_tokens, r.usage!.prompt_tokens + r.usage!.completion_tokens);
  const r2 = await client.chat.completions.create({ model: 'gpt-4o-mini', messages });
  assert.equal(r2.choices[0]!.message.content, text);
});

test('chat: n choices, max_tokens / max_completion_tokens, finish_reason length', async () => {
  const r = await client.chat.completions.create({
    model: 'gpt-4o',
    messages: [{ role: 'user', content: 'hi' }],
    n: 3,
    max_tokens: 7,
  });
  assert.equal(r.choices.length, 3);
  for (const [i, c] of r.choices.entries()) {
    assert.equal(c.index, i);
    assert.equal(c.finish_reason, 'length');
    assert.equal(encode(c.message.content!).length, 7);
  }
  assert.equal(r.usage!.completion_tokens, 21);
  const r2 = await client.chat.completions.create({
    model: 'gpt-4o',
    messages: [{ role: 'user', content: 'hi' }],
    max_completion_tokens: 5,
  });
  assert.equal(r2.usage!.completion_tokens, 5);
  assert.equal(r2.choices[0]!.finish_reason, 'length');
  // x-mock-completion-tokens shorter than max_tokens → natural stop
  const r3 = await client.chat.completions.create(
    { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], max_tokens: 50 },
    { headers: { 'x-mock-completion-tokens': '4' } },
  );
  assert.equal(r3.usage!.completion_tokens, 4);
  assert.equal(r3.choices[0]!.finish_reason, 'stop');
});

test('chat stream via SDK with include_usage: role chunk, one token per delta, usage chunk last', async () => {
  const stream = await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'Stream please' }],
    stream: true,
    stream_options: { include_usage: true },
    max_tokens: 40,
  });
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  assert.equal(chunks[0]!.choices[0]!.delta.role, 'assistant');
  const last = chunks.at(-1)!;
  assert.deepEqual(last.choices, []);
  assert.ok(last.usage);
  for (const c of chunks.slice(0, -1)) {
    assert.equal(c.object, 'chat.completion.chunk');
    assert.equal(c.model, 'gpt-4o-mini');
    assert.equal(c.usage, null);
  }
  const finish = chunks.at(-2)!;
  assert.equal(finish.choices[0]!.finish_reason, 'length');
  const deltas = chunks.slice(1, -2).map((c) => c.choices[0]!.delta.content!);
  assert.equal(deltas.length, 40);
  for (const d of deltas) assert.equal(encode(d).length, 1);
  const full = deltas.join('');
  assert.equal(encode(full).length, last.usage!.completion_tokens);
  assert.equal(last.usage!.completion_tokens, 40);
  // By hand: 3 priming + 3 framing + 'user' (1) + 'Stream please' (Stream| please = 2) = 9.
  assert.equal(last.usage!.prompt_tokens, 9);
  // same as the non-stream answer
  const ns = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Stream please' }], max_tokens: 40 });
  assert.equal(ns.choices[0]!.message.content, full);
});

test('chat stream without include_usage has no usage field; x-mock-no-usage suppresses the usage chunk', async () => {
  const res = await post('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'x' }], stream: true, max_tokens: 3 });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type')!, /^text\/event-stream/);
  const ev = parseSse(await res.text());
  assert.equal(ev.at(-1)!.data, '[DONE]');
  for (const e of ev.slice(0, -1)) assert.equal('usage' in JSON.parse(e.data), false);
  assert.equal(ev.length, 1 + 3 + 1 + 1);

  const res2 = await post(
    '/v1/chat/completions',
    { model: 'm', messages: [{ role: 'user', content: 'x' }], stream: true, stream_options: { include_usage: true }, max_tokens: 3 },
    { 'x-mock-no-usage': '1' },
  );
  const ev2 = parseSse(await res2.text());
  assert.equal(ev2.at(-1)!.data, '[DONE]');
  for (const e of ev2.slice(0, -1)) assert.notEqual(JSON.parse(e.data).choices.length, 0);
});

test('chat stream with n=2 interleaves choices', async () => {
  const stream = await client.chat.completions.create({
    model: 'm',
    messages: [{ role: 'user', content: 'two' }],
    n: 2,
    max_tokens: 5,
    stream: true,
    stream_options: { include_usage: true },
  });
  const texts = ['', ''];
  let usage;
  for await (const c of stream) {
    for (const ch of c.choices) texts[ch.index] += ch.delta.content ?? '';
    if (c.usage) usage = c.usage;
  }
  assert.equal(encode(texts[0]!).length + encode(texts[1]!).length, usage!.completion_tokens);
  assert.equal(usage!.completion_tokens, 10);
});

test('legacy completions, non-stream and stream', async () => {
  const r = await client.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: 'Once upon a time', max_tokens: 12 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0]!.finish_reason, 'length');
  assert.equal(encode(r.choices[0]!.text).length, 12);
  assert.equal(r.usage!.prompt_tokens, encode('Once upon a time').length);
  assert.equal(r.usage!.completion_tokens, 12);

  const s = await client.completions.create({
    model: 'gpt-3.5-turbo-instruct',
    prompt: ['a', 'b'],
    max_tokens: 4,
    stream: true,
    stream_options: { include_usage: true },
  });
  const texts = ['', ''];
  let usage;
  for await (const c of s) {
    for (const ch of c.choices) texts[ch.index] += ch.text;
    if (c.usage) usage = c.usage;
  }
  assert.equal(usage!.completion_tokens, 8);
  assert.equal(encode(texts[0]!).length, 4);
  assert.equal(encode(texts[1]!).length, 4);
});

test('embeddings via SDK (base64 by default), float format, dims, similarity', async () => {
  const inputs = [
    'The cat sat on the mat near the window.',
    'A cat was sitting on the mat by the window.',
    'Quarterly revenue grew by ten percent in Europe.',
  ];
  const r = await client.embeddings.create({ model: 'text-embedding-3-small', input: inputs });
  assert.equal(r.object, 'list');
  assert.equal(r.data.length, 3);
  for (const d of r.data) {
    assert.equal(d.embedding.length, 256);
    const norm = Math.sqrt(d.embedding.reduce((s, x) => s + x * x, 0));
    assert.ok(Math.abs(norm - 1) < 1e-5);
  }
  const [a, b, c] = r.data.map((d) => d.embedding);
  assert.ok(cosine(a!, b!) > cosine(a!, c!) + 0.3, `${cosine(a!, b!)} vs ${cosine(a!, c!)}`);
  assert.equal(r.usage.prompt_tokens, inputs.reduce((s, x) => s + encode(x).length, 0));
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens);

  const f = await client.embeddings.create({ model: 'e', input: inputs[0]!, encoding_format: 'float', dimensions: 64 });
  assert.equal(f.data[0]!.embedding.length, 64);
  const local = embed(inputs[0]!, 64);
  f.data[0]!.embedding.forEach((x, i) => assert.equal(x, local[i]));

  const t = await client.embeddings.create({ model: 'e', input: [[1, 2, 3], [4, 5]], encoding_format: 'float' });
  assert.equal(t.data.length, 2);
  assert.equal(t.usage.prompt_tokens, 5);
});

test('responses API non-stream via SDK', async () => {
  const r = await client.responses.create({ model: 'gpt-4.1-mini', input: 'Describe a valley.', instructions: 'Be brief.' });
  assert.equal(r.object, 'response');
  assert.equal(r.status, 'completed');
  assert.equal(r.model, 'gpt-4.1-mini');
  assert.equal(r.output.length, 1);
  const msg = r.output[0]!;
  assert.equal(msg.type, 'message');
  assert.ok(msg.type === 'message');
  assert.equal(msg.role, 'assistant');
  const part = msg.content[0]!;
  assert.equal(part.type, 'output_text');
  assert.ok(part.type === 'output_text');
  assert.deepEqual(part.annotations, []);
  assert.equal(r.output_text, part.text);
  assert.equal(r.usage!.output_tokens, encode(part.text).length);
  assert.equal(r.usage!.output_tokens, 16);
  // By hand, the instructions counted as a developer message: 3 + (3 + 'developer' 1 + 'Be brief.' Be| brief|. 3)
  // + (3 + 'user' 1 + 'Describe a valley.' Describe| a| valley|. 4) = 18.
  assert.equal(r.usage!.input_tokens, 18);
  assert.equal(r.usage!.total_tokens, r.usage!.input_tokens + r.usage!.output_tokens);
  assert.deepEqual(r.usage!.input_tokens_details, { cached_tokens: 0 });
  assert.deepEqual(r.usage!.output_tokens_details, { reasoning_tokens: 0 });

  const inc = await client.responses.create({ model: 'm', input: [{ role: 'user', content: 'hi' }], max_output_tokens: 9 });
  assert.equal(inc.status, 'incomplete');
  assert.deepEqual(inc.incomplete_details, { reason: 'max_output_tokens' });
  assert.equal(inc.usage!.output_tokens, 9);
});

test('responses API stream via SDK: event order, deltas, final response', async () => {
  const stream = await client.responses.create({ model: 'gpt-4o', input: 'Stream a story', stream: true });
  const types: string[] = [];
  let text = '';
  let seq = -1;
  let completed;
  for await (const ev of stream) {
    types.push(ev.type);
    assert.equal(ev.sequence_number, seq + 1);
    seq = ev.sequence_number;
    if (ev.type === 'response.output_text.delta') text += ev.delta;
    if (ev.type === 'response.completed') completed = ev.response;
  }
  assert.deepEqual(types.slice(0, 4), ['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added']);
  assert.deepEqual(types.slice(-4), ['response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.completed']);
  assert.equal(types.filter((t) => t === 'response.output_text.delta').length, 16);
  assert.equal(encode(text).length, completed!.usage!.output_tokens);

  // the SDK's accumulating helper accepts the stream too
  const helper = client.responses.stream({ model: 'gpt-4o', input: 'Stream a story' });
  const final = await helper.finalResponse();
  assert.equal(final.output_text, text);

  // raw wire format: `event:` lines matching data.type
  const raw = parseSse(await (await post('/v1/responses', { model: 'm', input: 'x', stream: true, max_output_tokens: 2 })).text());
  for (const e of raw) assert.equal(JSON.parse(e.data).type, e.event);
  assert.equal(raw.at(-1)!.event, 'response.incomplete');
});

test('models list and model retrieve via SDK', async () => {
  const models = [];
  for await (const m of client.models.list()) models.push(m);
  assert.ok(models.length > 0);
  assert.ok(models.every((m) => m.object === 'model' && typeof m.id === 'string'));
  const one = await client.models.retrieve('my-model');
  assert.equal(one.id, 'my-model');
});

test('errors: 404 unknown path, 400 malformed JSON / missing params, OpenAI error shape', async () => {
  const nf = await fetch(server.url + '/v1/nope');
  assert.equal(nf.status, 404);
  const nfb = (await nf.json()) as any;
  assert.deepEqual(Object.keys(nfb.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(nfb.error.type, 'invalid_request_error');

  const bad = await post('/v1/chat/completions', '{not json');
  assert.equal(bad.status, 400);
  assert.equal(((await bad.json()) as any).error.type, 'invalid_request_error');

  const miss = await post('/v1/chat/completions', { model: 'm' });
  assert.equal(miss.status, 400);
  assert.equal(((await miss.json()) as any).error.param, 'messages');

  await assert.rejects(
    client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-mock-status': '500' } }),
    (e: any) => e instanceof OpenAI.InternalServerError && e.status === 500 && e.type === 'server_error',
  );
});

test('fault: 429 with retry-after / retry-after-ms; fail rate from options', async () => {
  const r = await post('/v1/chat/completions', { model: 'm', messages: [] }, { 'x-mock-status': '429', 'x-mock-retry-after': '3' });
  assert.equal(r.status, 429);
  assert.equal(r.headers.get('retry-after'), '3');
  assert.equal(r.headers.get('retry-after-ms'), '3000');
  const b = (await r.json()) as any;
  assert.equal(b.error.code, 'rate_limit_exceeded');
  assert.equal(b.error.type, 'requests');

  const s2 = await startMockServer({ failRate: 1, failStatus: 503, retryAfterSeconds: 1.5 });
  try {
    const r2 = await fetch(s2.url + '/v1/embeddings', { method: 'POST', body: JSON.stringify({ model: 'e', input: 'x' }) });
    assert.equal(r2.status, 503);
    assert.equal(r2.headers.get('retry-after'), '2');
    assert.equal(r2.headers.get('retry-after-ms'), '1500');
    await r2.text();
    // header overrides option
    const r3 = await fetch(s2.url + '/v1/embeddings', { method: 'POST', headers: { 'x-mock-fail-rate': '0' }, body: JSON.stringify({ model: 'e', input: 'x' }) });
    assert.equal(r3.status, 200);
    await r3.text();
  } finally {
    await s2.close();
  }
});

test('x-request-id echoed, x-mock-prompt-tokens set', async () => {
  const r = await post('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'hello' }] }, { 'x-request-id': 'abc-123' });
  assert.equal(r.headers.get('x-request-id'), 'abc-123');
  // By hand: 3 + 3 + 'user' (1) + 'hello' (1) = 8.
  assert.equal(r.headers.get('x-mock-prompt-tokens'), '8');
  await r.text();
});

test('fault: hang, then client abort increments stats.aborted and frees the request', async () => {
  const before = { ...server.stats };
  const ac = new AbortController();
  const p = post('/v1/chat/completions', { model: 'm', messages: [{ role: 'user', content: 'x' }] }, { 'x-mock-hang': '1' }, ac.signal);
  await waitFor(() => server.stats.requests > before.requests && server.stats.active > before.active);
  await sleep(30);
  ac.abort();
  await assert.rejects(p);
  await waitFor(() => server.stats.aborted === before.aborted + 1);
  await waitFor(() => server.stats.active === before.active);
});

test('fault: client abort mid-stream stops generation', async () => {
  const before = server.stats.completionTokensSent;
  const ac = new AbortController();
  const res = await post(
    '/v1/chat/completions',
    { model: 'm', messages: [{ role: 'user', content: 'x' }], stream: true, max_tokens: 1000 },
    { 'x-mock-tps': '200' },
    ac.signal,
  );
  const reader = res.body!.getReader();
  // Read until the client itself has seen 3 content deltas (each one token): a figure the mock did not report.
  const dec = new TextDecoder();
  let seen = 0;
  while (seen < 3) {
    const { value, done } = await reader.read();
    assert.ok(!done, 'the stream ended early');
    seen += (dec.decode(value).match(/"content":"[^"]/g) ?? []).length;
  }
  const abortedBefore = server.stats.aborted;
  ac.abort();
  await waitFor(() => server.stats.aborted === abortedBefore + 1);
  const sent = server.stats.completionTokensSent - before;
  // Not a synchronisation sleep: an observation window for an absence. At 200 tokens/s a generator that kept
  // running would add ~12 tokens in 60 ms.
  await sleep(60);
  assert.equal(server.stats.completionTokensSent - before, sent, 'no tokens generated after abort');
  assert.ok(sent >= seen, `the mock counted at least the ${seen} tokens the client received (${sent})`);
  assert.ok(sent < 1000);
});

test('fault: connection reset after N tokens', async () => {
  const before = server.stats.completionTokensSent;
  const abortedBefore = server.stats.aborted;
  const res = await post(
    '/v1/chat/completions',
    { model: 'm', messages: [{ role: 'user', content: 'x' }], stream: true, max_tokens: 50 },
    { 'x-mock-reset-after-tokens': '5' },
  );
  assert.equal(res.status, 200);
  let text = '';
  await assert.rejects(async () => {
    const dec = new TextDecoder();
    for await (const chunk of res.body!) text += dec.decode(chunk as Uint8Array, { stream: true });
  });
  assert.ok(!text.includes('[DONE]'));
  const contents = parseSse(text).filter((e) => e.data.includes('"content":"') && !e.data.includes('"role"'));
  assert.ok(contents.length <= 5);
  assert.equal(server.stats.completionTokensSent - before, 5);
  await sleep(20); // an observation window for an absence (a late abort count), not a synchronisation
  assert.equal(server.stats.aborted, abortedBefore, 'server-initiated reset is not a client abort');
});

test('fault: in-stream error event after N tokens (SDK throws)', async () => {
  const res = await post(
    '/v1/chat/completions',
    { model: 'm', messages: [{ role: 'user', content: 'x' }], stream: true, max_tokens: 20 },
    { 'x-mock-error-after-tokens': '3' },
  );
  const ev = parseSse(await res.text());
  const last = JSON.parse(ev.at(-1)!.data);
  assert.equal(last.error.type, 'server_error');
  assert.ok(!ev.some((e) => e.data === '[DONE]'));
  assert.equal(ev.filter((e) => e.data.includes('"content":"') && !e.data.includes('"role"')).length, 3);

  const stream = await client.chat.completions.create(
    { model: 'm', messages: [{ role: 'user', content: 'x' }], stream: true },
    { headers: { 'x-mock-error-after-tokens': '2' } },
  );
  await assert.rejects(async () => {
    for await (const _ of stream);
  }, OpenAI.APIError);

  const rs = parseSse(await (await post('/v1/responses', { model: 'm', input: 'x', stream: true }, { 'x-mock-error-after-tokens': '1' })).text());
  assert.equal(rs.at(-1)!.event, 'error');
});

test('pacing: ttft and tps — first token arrives well before the end (ordering only)', async () => {
  const t0 = performance.now();
  const res = await post(
    '/v1/chat/completions',
    { model: 'm', messages: [{ role: 'user', content: 'x' }], stream: true, max_tokens: 8 },
    { 'x-mock-ttft-ms': '40', 'x-mock-tps': '25' },
  );
  const tHeaders = performance.now() - t0;
  const dec = new TextDecoder();
  let buf = '';
  let tFirst = -1;
  let tDone = -1;
  for await (const chunk of res.body!) {
    buf += dec.decode(chunk as Uint8Array, { stream: true });
    const now = performance.now() - t0;
    if (tFirst < 0 && buf.includes('"delta":{"content"')) tFirst = now;
    if (buf.includes('[DONE]')) tDone = now;
  }
  assert.ok(tFirst >= 0 && tDone >= 0);
  assert.ok(tHeaders <= tFirst, 'headers before first token');
  assert.ok(tFirst < tDone, 'first token before the end');
  // 7 intervals at 25 tok/s ≈ 280ms between first and last token; only require a clear gap
  assert.ok(tDone - tFirst > 100, `gap ${tDone - tFirst}`);
});

test('non-stream latency: response after latency (ordering only)', async () => {
  const t0 = performance.now();
  const r = await post('/v1/embeddings', { model: 'e', input: 'x' }, { 'x-mock-latency-ms': '60' });
  await r.json();
  assert.ok(performance.now() - t0 >= 50);
});

test('Azure OpenAI deployment paths', async () => {
  const r = await post('/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21', {
    messages: [{ role: 'user', content: 'hi' }],
  });
  assert.equal(r.status, 200);
  const b = (await r.json()) as any;
  assert.equal(b.model, 'my-gpt4o');
  assert.equal(b.object, 'chat.completion');

  const e = (await (await post('/openai/deployments/emb/embeddings?api-version=2024-10-21', { input: ['a', 'b'] })).json()) as any;
  assert.equal(e.model, 'emb');
  assert.equal(e.data.length, 2);

  const c = (await (await post('/openai/deployments/inst/completions?api-version=2024-10-21', { prompt: 'x', max_tokens: 3 })).json()) as any;
  assert.equal(c.model, 'inst');
  assert.equal(c.usage.completion_tokens, 3);

  const az = new AzureOpenAI({ endpoint: server.url, apiKey: 'x', apiVersion: '2024-10-21', deployment: 'dep-1', maxRetries: 0 });
  const ar = await az.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello' }] });
  assert.equal(ar.usage!.completion_tokens, encode(ar.choices[0]!.message.content!).length);

  const bad = await post('/openai/deployments/x/unknown?api-version=1', {});
  assert.equal(bad.status, 404);
  await bad.text();
});

test('createMockHandler works on a user-provided http server', async () => {
  const handler = createMockHandler({ completionTokens: 3 });
  const srv = http.createServer(handler);
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as any).port;
  try {
    const c = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'x', maxRetries: 0 });
    const r = await c.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(r.usage!.completion_tokens, 3);
  } finally {
    srv.closeAllConnections();
    srv.close();
  }
});

test('cli: runMockCommand prints its URL and exits on SIGTERM', async () => {
  const cli = fileURLToPath(new URL('../src/mock/cli.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', cli, '--port', '0', '--latency', '1', '--tps', '1000'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    let out = '';
    child.stdout!.setEncoding('utf8');
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout!.on('data', (d: string) => {
        out += d;
        const m = /(http:\/\/[^\s)]+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      child.once('exit', () => reject(new Error('cli exited early: ' + out)));
    });
    const r = await fetch(url + '/v1/models');
    assert.equal(r.status, 200);
    await r.json();
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const [code] = await exited;
    assert.equal(code, 0);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});
