/**
 * The mock's Realtime API over WebSocket: `GET /v1/realtime?model=…`, Azure's `/openai/realtime?deployment=…`
 * and `/openai/v1/realtime?model=…`, attached to the mock server's HTTP `upgrade`. Event names are the GA
 * API's (openai/resources/realtime/realtime.d.ts); a client that sends `OpenAI-Beta: realtime=v1` gets the
 * beta names (`response.audio.delta`, `response.text.delta`, `conversation.item.created`).
 *
 * Deterministic, from fixed figures a test can recompute:
 * - text: the mock's one text engine (text.ts), seeded by the last user text; `count` = the response's
 *   (or session's) max_output_tokens, else the server's completionTokens (16);
 * - audio: one 100 ms chunk of 24 kHz mono pcm16 per transcript token, a 440 Hz sine of amplitude 8000 over
 *   the response's samples (sample g = round(8000·sin(2π·440·g/24000)), g counted from 0 in each response);
 * - usage: input text tokens = o200k tokens of instructions and of every item's text; input audio tokens =
 *   committed user audio at 1 token per 100 ms (4,800 bytes) plus earlier assistant audio; output audio
 *   tokens = 2 per chunk (1 per 50 ms); cached tokens = the previous response's input tokens (by modality).
 * Server VAD (`turn_detection: { type: server_vad }`): a committed buffer is "speech", announced with
 * speech_started/stopped, and starts a response by itself (unless `create_response: false`).
 */
import { EventEmitter } from 'node:events';
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { randomBytes } from 'node:crypto';
import WebSocket, { WebSocketServer } from 'ws';
import type { MockIdentity } from './identity.ts';
import { completionText, countTextTokens, fnv1a, makeCompletion, pieceText, SENTENCE_STARTS } from './text.ts';

export const MOCK_AUDIO = { sampleRate: 24_000, chunkMs: 100, frequency: 440, amplitude: 8000 } as const;
const SAMPLES_PER_CHUNK = (MOCK_AUDIO.sampleRate * MOCK_AUDIO.chunkMs) / 1000;
/** OpenAI accepts up to 15 MiB of audio in one append; the mock's frame limit is a little above. */
const MAX_PAYLOAD = 16 * 1024 * 1024;
const PATHS = new Set(['/v1/realtime', '/openai/realtime', '/openai/v1/realtime']);

export interface MockRealtimeOptions {
  completionTokens?: number;
  tokensPerSecond?: number;
}

export interface MockRealtimeSessionInfo {
  readonly id: string;
  readonly path: string;
  readonly model: string;
  readonly headers: http.IncomingHttpHeaders;
}

/**
 * What tests see of the mock's Realtime side: counters, and events — `open` (MockRealtimeSessionInfo),
 * `client-event` ({ session, type }) for every event a client sent, `close` ({ session, code, at }).
 */
export interface MockRealtime {
  readonly stats: { sessions: number; active: number; closed: number; clientEvents: number };
  readonly events: EventEmitter;
  /** Ends every open session with a close frame (a backend going away), as OpenAI does at its duration cap. */
  closeAll(code: number, reason: string): void;
  close(): void;
}

type Json = Record<string, unknown>;
const id = (prefix: string) => `${prefix}_${randomBytes(11).toString('base64url')}`;

/** Chunk `k` of a response's synthetic audio, base64 pcm16 little-endian. */
export function mockAudioChunk(k: number): string {
  const buf = Buffer.alloc(SAMPLES_PER_CHUNK * 2);
  for (let j = 0; j < SAMPLES_PER_CHUNK; j++) {
    const g = k * SAMPLES_PER_CHUNK + j;
    buf.writeInt16LE(Math.round(MOCK_AUDIO.amplitude * Math.sin((2 * Math.PI * MOCK_AUDIO.frequency * g) / MOCK_AUDIO.sampleRate)), j * 2);
  }
  return buf.toString('base64');
}

interface Item { readonly id: string; readonly role: string; readonly textTokens: number; readonly audioTokens: number; readonly text: string }

class MockSession {
  private readonly items: Item[] = [];
  private audioBytes = 0;
  private instructions = '';
  private modalities: string[] = ['audio'];
  private sessionCap: number | null = null;
  /** Server voice activity detection: a committed buffer starts a response by itself. */
  private serverVad = false;
  private running: { id: string; cancelled: boolean } | null = null;
  private previousInput = { text: 0, audio: 0 };
  private readonly sessionId = id('sess');

  constructor(
    private readonly ws: WebSocket,
    private readonly info: MockRealtimeSessionInfo,
    private readonly beta: boolean,
    private readonly opts: MockRealtimeOptions,
    private readonly emit: (type: string) => void,
  ) {
    this.send({ type: 'session.created', session: this.sessionObject() });
    ws.on('message', (data, isBinary) => this.onMessage(data as Buffer, isBinary));
  }

  private send(ev: Json): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ event_id: id('event'), ...ev }));
  }

  private error(code: string, message: string, eventId: unknown = null, param: string | null = null): void {
    this.send({ type: 'error', error: { type: 'invalid_request_error', code, message, param, event_id: typeof eventId === 'string' ? eventId : null } });
  }

  private sessionObject(): Json {
    const base = { id: this.sessionId, object: 'realtime.session', model: this.info.model, instructions: this.instructions, max_output_tokens: this.sessionCap ?? 'inf' };
    if (this.beta) return { ...base, modalities: this.modalities.includes('audio') ? ['text', 'audio'] : ['text'], voice: 'alloy', input_audio_format: 'pcm16', output_audio_format: 'pcm16', turn_detection: null };
    return { type: 'realtime', ...base, output_modalities: this.modalities, audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, turn_detection: null }, output: { format: { type: 'audio/pcm', rate: 24000 }, voice: 'alloy' } } };
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (isBinary) return this.error('invalid_event', 'Binary messages are not supported; send JSON text events.');
    let ev: Json;
    try {
      ev = JSON.parse(data.toString('utf8')) as Json;
    } catch {
      return this.error('invalid_json', 'The event could not be parsed as JSON.');
    }
    if (!ev || typeof ev !== 'object' || typeof ev.type !== 'string') return this.error('invalid_event', "The event has no 'type'.", null, 'type');
    this.emit(ev.type);
    switch (ev.type) {
      case 'session.update': return this.sessionUpdate(ev);
      case 'conversation.item.create': return this.itemCreate(ev);
      case 'input_audio_buffer.append': {
        if (typeof ev.audio !== 'string') return this.error('invalid_value', "Missing required parameter: 'audio'.", ev.event_id, 'audio');
        this.audioBytes += Buffer.byteLength(ev.audio, 'base64');
        return;
      }
      case 'input_audio_buffer.clear':
        this.audioBytes = 0;
        return this.send({ type: 'input_audio_buffer.cleared' });
      case 'input_audio_buffer.commit': return this.commit(ev);
      case 'response.create': return void this.respond(ev);
      case 'response.cancel':
        if (this.running) this.running.cancelled = true;
        return;
      default:
        return this.error('invalid_event', `Invalid value: '${String(ev.type).slice(0, 64)}'. Supported values are client events of the Realtime API.`, ev.event_id, 'type');
    }
  }

  private sessionUpdate(ev: Json): void {
    const s = (ev.session ?? {}) as Json;
    if (typeof s.instructions === 'string') this.instructions = s.instructions;
    const m = s.output_modalities ?? s.modalities;
    if (Array.isArray(m)) this.modalities = m.includes('audio') ? ['audio'] : ['text'];
    const cap = s.max_output_tokens ?? s.max_response_output_tokens;
    if (typeof cap === 'number') this.sessionCap = cap;
    const audioCfg = (s.audio ?? {}) as { input?: { turn_detection?: unknown } };
    const td = 'turn_detection' in s ? s.turn_detection : audioCfg.input && 'turn_detection' in audioCfg.input ? audioCfg.input.turn_detection : undefined;
    if (td !== undefined) this.serverVad = !!td && typeof td === 'object' && (td as Json).type === 'server_vad' && (td as Json).create_response !== false;
    this.send({ type: 'session.updated', session: this.sessionObject() });
  }

  private addItem(item: Item, raw: Json): void {
    const previous = this.items.length ? this.items[this.items.length - 1]!.id : null;
    this.items.push(item);
    if (this.beta) this.send({ type: 'conversation.item.created', previous_item_id: previous, item: raw });
    else {
      this.send({ type: 'conversation.item.added', previous_item_id: previous, item: raw });
      this.send({ type: 'conversation.item.done', previous_item_id: previous, item: raw });
    }
  }

  private itemCreate(ev: Json): void {
    const item = (ev.item ?? {}) as Json;
    const content = Array.isArray(item.content) ? (item.content as Json[]) : [];
    let text = '';
    let audioBytes = 0;
    for (const c of content) {
      if (typeof c?.text === 'string') text += c.text;
      if (typeof c?.audio === 'string') audioBytes += Buffer.byteLength(c.audio, 'base64');
    }
    const itemId = typeof item.id === 'string' ? item.id : id('item');
    this.addItem({ id: itemId, role: typeof item.role === 'string' ? item.role : 'user', text, textTokens: countTextTokens(text), audioTokens: Math.ceil(audioBytes / 4800) }, { ...item, id: itemId, object: 'realtime.item', status: 'completed' });
  }

  private commit(ev: Json): void {
    if (this.audioBytes === 0) return this.error('input_audio_buffer_commit_empty', 'Error committing input audio buffer: buffer is empty.', ev.event_id);
    const itemId = id('item');
    const previous = this.items.length ? this.items[this.items.length - 1]!.id : null;
    const tokens = Math.ceil(this.audioBytes / 4800);
    if (this.serverVad) {
      this.send({ type: 'input_audio_buffer.speech_started', audio_start_ms: 0, item_id: itemId });
      this.send({ type: 'input_audio_buffer.speech_stopped', audio_end_ms: Math.round(this.audioBytes / 48), item_id: itemId });
    }
    this.send({ type: 'input_audio_buffer.committed', previous_item_id: previous, item_id: itemId });
    this.addItem({ id: itemId, role: 'user', text: `audio:${this.audioBytes}`, textTokens: 0, audioTokens: tokens }, { id: itemId, object: 'realtime.item', type: 'message', role: 'user', status: 'completed', content: [{ type: 'input_audio', transcript: null }] });
    this.audioBytes = 0;
    // With server VAD the end of speech starts a response, no response.create needed.
    if (this.serverVad && !this.running) void this.respond({});
  }

  private async respond(ev: Json): Promise<void> {
    if (this.running) return this.error('conversation_already_has_active_response', `Conversation already has an active response in progress: ${this.running.id}. Wait until the response is finished before creating a new one.`, ev.event_id);
    const r = (ev.response ?? {}) as Json;
    const m = r.output_modalities ?? r.modalities;
    const audio = Array.isArray(m) ? m.includes('audio') : this.modalities.includes('audio');
    const capRaw = r.max_output_tokens ?? r.max_response_output_tokens ?? this.sessionCap;
    const cap = typeof capRaw === 'number' ? capRaw : Infinity;
    const want = this.opts.completionTokens ?? 16;
    const n = Math.max(1, Math.min(want, audio ? Math.floor(cap / 3) : cap));
    const lastUser = [...this.items].reverse().find((i) => i.role === 'user');
    const completion = makeCompletion(fnv1a(lastUser?.text ?? '') % SENTENCE_STARTS.length, 0, n);
    const responseId = id('resp');
    const itemId = id('item');
    const run = { id: responseId, cancelled: false };
    this.running = run;
    const modalities = audio ? ['audio'] : ['text'];
    const responseObj = (status: string, extra: Json = {}) => ({ id: responseId, object: 'realtime.response', status, status_details: null, output: [], conversation_id: 'conv_mock', [this.beta ? 'modalities' : 'output_modalities']: this.beta && audio ? ['text', 'audio'] : modalities, max_output_tokens: Number.isFinite(cap) ? cap : 'inf', usage: null, ...extra });
    const inputText = countTextTokens(this.instructions) + this.items.reduce((s, i) => s + i.textTokens, 0);
    const inputAudio = this.items.reduce((s, i) => s + i.audioTokens, 0);
    this.send({ type: 'response.created', response: responseObj('in_progress') });
    const item = { id: itemId, object: 'realtime.item', type: 'message', status: 'in_progress', role: 'assistant', content: [] as Json[] };
    this.send({ type: 'response.output_item.added', response_id: responseId, output_index: 0, item });
    const at = { response_id: responseId, item_id: itemId, output_index: 0, content_index: 0 };
    this.send({ type: 'response.content_part.added', ...at, part: audio ? { type: 'audio', transcript: '' } : { type: 'text', text: '' } });
    const names = this.beta
      ? { text: 'response.text', audio: 'response.audio', transcript: 'response.audio_transcript' }
      : { text: 'response.output_text', audio: 'response.output_audio', transcript: 'response.output_audio_transcript' };
    const delayMs = this.opts.tokensPerSecond ? 1000 / this.opts.tokensPerSecond : 0;
    let produced = 0;
    for (let k = 0; k < n; k++) {
      if (run.cancelled || this.ws.readyState !== WebSocket.OPEN) break;
      const piece = pieceText(completion, k);
      if (audio) {
        this.send({ type: `${names.transcript}.delta`, ...at, delta: piece });
        this.send({ type: `${names.audio}.delta`, ...at, delta: mockAudioChunk(k) });
      } else this.send({ type: `${names.text}.delta`, ...at, delta: piece });
      produced++;
      await new Promise((resolve) => (delayMs > 0 ? setTimeout(resolve, delayMs) : setImmediate(resolve)));
    }
    this.running = null;
    if (this.ws.readyState !== WebSocket.OPEN) return;
    const text = completionText({ ...completion, count: produced });
    if (audio) {
      this.send({ type: `${names.audio}.done`, ...at });
      this.send({ type: `${names.transcript}.done`, ...at, transcript: text });
    } else this.send({ type: `${names.text}.done`, ...at, text });
    const part = audio ? { type: 'audio', transcript: text } : { type: 'text', text };
    this.send({ type: 'response.content_part.done', ...at, part });
    const doneItem = { ...item, status: run.cancelled ? 'incomplete' : 'completed', content: [audio ? { type: 'output_audio', transcript: text } : { type: 'output_text', text }] };
    this.send({ type: 'response.output_item.done', response_id: responseId, output_index: 0, item: doneItem });
    const outAudio = audio ? produced * 2 : 0;
    this.items.push({ id: itemId, role: 'assistant', text, textTokens: produced, audioTokens: outAudio });
    const cachedText = Math.min(this.previousInput.text, inputText);
    const cachedAudio = Math.min(this.previousInput.audio, inputAudio);
    this.previousInput = { text: inputText, audio: inputAudio };
    const usage = {
      total_tokens: inputText + inputAudio + produced + outAudio,
      input_tokens: inputText + inputAudio,
      output_tokens: produced + outAudio,
      input_token_details: { text_tokens: inputText, audio_tokens: inputAudio, image_tokens: 0, cached_tokens: cachedText + cachedAudio, cached_tokens_details: { text_tokens: cachedText, audio_tokens: cachedAudio, image_tokens: 0 } },
      output_token_details: { text_tokens: produced, audio_tokens: outAudio },
    };
    this.send({ type: 'response.done', response: responseObj(run.cancelled ? 'cancelled' : 'completed', { output: [doneItem], usage }) });
  }
}

/** Serves Realtime on `server`'s upgrade requests; other upgrade paths get a 404. */
export function attachMockRealtime(server: http.Server, opts: MockRealtimeOptions, identity: MockIdentity): MockRealtime {
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_PAYLOAD, perMessageDeflate: false, handleProtocols: (p) => (p.has('realtime') ? 'realtime' : false) });
  const stats = { sessions: 0, active: 0, closed: 0, clientEvents: 0 };
  const events = new EventEmitter();
  const open = new Set<WebSocket>();
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => {});
    const url = new URL(req.url ?? '/', 'http://mock');
    const path = url.pathname.replace(/\/$/, '');
    const answer = (status: number, body: Json) => {
      const text = JSON.stringify(body);
      socket.end(`HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : status === 404 ? 'Not Found' : 'Bad Request'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`);
    };
    if (!PATHS.has(path)) return answer(404, { error: { message: `Invalid URL (GET ${path})`, type: 'invalid_request_error', param: null, code: null } });
    const auth = typeof req.headers.authorization === 'string' ? req.headers.authorization : '';
    const bearer = auth.startsWith('Bearer ') ? auth.slice(7) : '';
    // As the mock's HTTP routes: any key (or none) is accepted, but an Entra token must be one it issued and live.
    if (bearer.startsWith('mock-entra') && identity.check(bearer) !== 'valid') {
      return answer(401, { error: { message: 'Missing or invalid credentials for the Realtime API.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
    }
    const model = url.searchParams.get(path === '/openai/realtime' ? 'deployment' : 'model') ?? '';
    if (!model) return answer(400, { error: { message: "Missing required parameter: 'model'.", type: 'invalid_request_error', param: 'model', code: 'missing_required_parameter' } });
    wss.handleUpgrade(req, socket, head, (ws) => {
      const info: MockRealtimeSessionInfo = { id: id('sess'), path, model, headers: req.headers };
      stats.sessions++;
      stats.active++;
      open.add(ws);
      ws.on('error', () => {});
      ws.on('close', (code) => {
        open.delete(ws);
        stats.active--;
        stats.closed++;
        events.emit('close', { session: info.id, code, at: Date.now() });
      });
      events.emit('open', info);
      const beta = /realtime=v1/i.test(String(req.headers['openai-beta'] ?? ''));
      new MockSession(ws, info, beta, opts, (type) => {
        stats.clientEvents++;
        events.emit('client-event', { session: info.id, type });
      });
    });
  });
  return {
    stats,
    events,
    closeAll(code, reason) {
      for (const ws of open) ws.close(code, reason);
    },
    close() {
      for (const ws of open) ws.terminate();
      wss.close();
    },
  };
}
