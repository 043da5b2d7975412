import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { FunctionCallingConfigMode, GoogleGenAI, type Schema, Type } from '@google/genai'
import { OAuth2Client } from 'google-auth-library'
import { startMockServer, type MockServer } from '../src/mock/llm.ts'
import { mintGoogleToken } from '../src/mock/dialects/google-identity.ts'

// The mock's Gemini dialect, proven with Google's own SDK (@google/genai) as its client: the SDK parses
// what the mock sends exactly as it parses Google's answers (generateContent, generateContentStream,
// function calling, thoughts), on the Gemini API paths and, in vertexai mode, on Vertex AI's.

let mock: MockServer
let ai: GoogleGenAI

before(async () => {
  mock = await startMockServer()
  ai = new GoogleGenAI({ apiKey: 'AIza-mock-key', httpOptions: { baseUrl: mock.url } })
})
after(() => mock.close())

const weather = {
  name: 'get_weather',
  description: 'Weather in a city',
  parameters: { type: Type.OBJECT, properties: { city: { type: Type.STRING }, unit: { type: Type.STRING, enum: ['C', 'F'] } }, required: ['city', 'unit'] } satisfies Schema,
}

test('generateContent: text, finish reason and usage the SDK reads', async () => {
  const res = await ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'Say hello', config: { maxOutputTokens: 5 } })
  assert.equal(typeof res.text, 'string')
  assert.ok(res.text!.length > 0)
  assert.equal(res.candidates![0]!.finishReason, 'MAX_TOKENS')
  assert.equal(res.usageMetadata!.candidatesTokenCount, 5)
  // "Say hello": two o200k tokens.
  assert.equal(res.usageMetadata!.promptTokenCount, 2)
  assert.equal(res.usageMetadata!.totalTokenCount, 7)
  assert.equal(res.modelVersion, 'gemini-2.5-flash')
})

test('generateContentStream: one chunk per token, usage complete on the last', async () => {
  const stream = await ai.models.generateContentStream({ model: 'gemini-2.5-flash', contents: 'Tell me a story', config: { maxOutputTokens: 8 } })
  let text = ''
  let chunks = 0
  let lastUsage: unknown
  let finish: string | undefined
  for await (const chunk of stream) {
    chunks++
    text += chunk.text ?? ''
    lastUsage = chunk.usageMetadata
    finish = chunk.candidates?.[0]?.finishReason ?? finish
  }
  assert.equal(chunks, 9, '8 token chunks and the closing one')
  assert.ok(text.split(/\s+/).length >= 3)
  assert.equal(finish, 'MAX_TOKENS')
  assert.deepEqual({ ...(lastUsage as object) }, { promptTokenCount: 4, candidatesTokenCount: 8, totalTokenCount: 12, promptTokensDetails: [{ modality: 'TEXT', tokenCount: 4 }] })
})

test('the SSE framing is Google\'s: data: {...} CRLF CRLF', async () => {
  const res = await fetch(`${mock.url}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse`, {
    method: 'POST', headers: { 'x-goog-api-key': 'k', 'content-type': 'application/json' },
    body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }], generationConfig: { maxOutputTokens: 2 } }),
  })
  assert.equal(res.headers.get('content-type'), 'text/event-stream')
  const raw = await res.text()
  const events = raw.split('\r\n\r\n')
  assert.equal(events.pop(), '', 'ends with a blank line')
  assert.equal(events.length, 3)
  for (const e of events) assert.match(e, /^data: \{.*\}$/)
})

test('function calling: forced by toolConfig ANY, with a thought signature the SDK keeps, and the result turn', async () => {
  const res = await ai.models.generateContent({
    model: 'gemini-2.5-flash',
    contents: 'Weather in Paris?',
    config: { tools: [{ functionDeclarations: [weather] }], toolConfig: { functionCallingConfig: { mode: FunctionCallingConfigMode.ANY } } },
  })
  const calls = res.functionCalls!
  assert.equal(calls.length, 1)
  assert.equal(calls[0]!.name, 'get_weather')
  assert.deepEqual(calls[0]!.args, { city: 'mock', unit: 'C' })
  const part = res.candidates![0]!.content!.parts![0]!
  assert.ok(part.thoughtSignature)

  // The call and its result go back; the signature is accepted, the answer is text.
  const next = await ai.models.generateContent({
    model: 'gemini-2.5-flash',
    contents: [
      { role: 'user', parts: [{ text: 'Weather in Paris?' }] },
      { role: 'model', parts: [part] },
      { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: { temp: 21 } } }] },
    ],
    config: { tools: [{ functionDeclarations: [weather] }] },
  })
  assert.ok(next.text && next.text.length > 0)
  assert.equal(next.functionCalls, undefined)

  // A signature the mock never made is refused, as Gemini refuses a forged one.
  await assert.rejects(ai.models.generateContent({
    model: 'gemini-2.5-flash',
    contents: [{ role: 'user', parts: [{ text: 'x' }] }, { role: 'model', parts: [{ ...part, thoughtSignature: 'Zm9yZ2Vk' }] }, { role: 'user', parts: [{ text: 'y' }] }],
  }), (err: Error & { status?: number }) => err.status === 400 && /signature/i.test(err.message))
})

test('parallel function calls in a stream arrive whole, on request (x-mock-tool-call)', async () => {
  const stream = await ai.models.generateContentStream({
    model: 'gemini-2.5-flash',
    contents: 'Weather in Paris and Rome?',
    config: { tools: [{ functionDeclarations: [weather] }], httpOptions: { headers: { 'x-mock-tool-call': 'get_weather', 'x-mock-tool-calls': '2', 'x-mock-tool-args': '{"city":"Rome","unit":"F"}' } } },
  })
  const calls: unknown[] = []
  for await (const chunk of stream) calls.push(...(chunk.functionCalls ?? []))
  assert.deepEqual(calls.map((c) => ({ ...(c as object) })), [{ name: 'get_weather', args: { city: 'Rome', unit: 'F' } }, { name: 'get_weather', args: { city: 'Rome', unit: 'F' } }])
})

test('thoughts when includeThoughts, counted in thoughtsTokenCount', async () => {
  const res = await ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'Think', config: { maxOutputTokens: 4, thinkingConfig: { includeThoughts: true, thinkingBudget: 1024 } } })
  const parts = res.candidates![0]!.content!.parts!
  assert.equal(parts[0]!.thought, true)
  assert.ok(parts[0]!.text!.length > 0)
  assert.equal(parts[1]!.thought, undefined)
  assert.equal(res.usageMetadata!.thoughtsTokenCount, 6)
  assert.equal(res.usageMetadata!.candidatesTokenCount, 4)
  // Without includeThoughts: no thought part.
  const plain = await ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'Think', config: { maxOutputTokens: 4 } })
  assert.equal(plain.candidates![0]!.content!.parts!.length, 1)
  assert.equal(plain.usageMetadata!.thoughtsTokenCount, undefined)
})

test('faults in google.rpc form: 429 with RetryInfo, 503 UNAVAILABLE; auth refusals', async () => {
  await assert.rejects(
    ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'x', config: { httpOptions: { headers: { 'x-mock-status': '429', 'x-mock-retry-after': '7' } } } }),
    (err: Error & { status?: number }) => {
      assert.equal(err.status, 429)
      const body = JSON.parse(err.message) as { error: { status: string; details: Array<Record<string, string>> } }
      assert.equal(body.error.status, 'RESOURCE_EXHAUSTED')
      assert.equal(body.error.details.find((d) => d['@type']!.endsWith('RetryInfo'))!.retryDelay, '7s')
      return true
    },
  )
  await assert.rejects(
    ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'x', config: { httpOptions: { headers: { 'x-mock-status': '503' } } } }),
    (err: Error & { status?: number }) => err.status === 503 && /UNAVAILABLE/.test(err.message),
  )
  const badKey = new GoogleGenAI({ apiKey: 'invalid-key', httpOptions: { baseUrl: mock.url } })
  await assert.rejects(badKey.models.generateContent({ model: 'gemini-2.5-flash', contents: 'x' }), (err: Error & { status?: number }) => err.status === 400 && /API_KEY_INVALID/.test(err.message))
  const noKey = await fetch(`${mock.url}/v1beta/models/gemini-2.5-flash:generateContent`, { method: 'POST', body: '{"contents":[{"parts":[{"text":"x"}]}]}' })
  assert.equal(noKey.status, 403)
  const byQuery = await fetch(`${mock.url}/v1beta/models/gemini-2.5-flash:generateContent?key=abc`, { method: 'POST', body: '{"contents":[{"parts":[{"text":"x"}]}]}' })
  assert.equal(byQuery.status, 200)
})

test('vertexai mode: the Vertex paths with a bearer token the mock issued', async () => {
  const authClient = new OAuth2Client()
  authClient.setCredentials({ access_token: mintGoogleToken('sa@proj.iam.gserviceaccount.com', 'https://www.googleapis.com/auth/cloud-platform'), expiry_date: Date.now() + 3_600_000 })
  const vertex = new GoogleGenAI({ vertexai: true, project: 'proj', location: 'us-central1', httpOptions: { baseUrl: mock.url }, googleAuthOptions: { authClient } })
  const res = await vertex.models.generateContent({ model: 'gemini-2.5-flash', contents: 'Say hello', config: { maxOutputTokens: 3 } })
  assert.equal(res.usageMetadata!.candidatesTokenCount, 3)
  const stream = await vertex.models.generateContentStream({ model: 'gemini-2.5-flash', contents: 'Say hello', config: { maxOutputTokens: 3 } })
  let text = ''
  for await (const c of stream) text += c.text ?? ''
  assert.ok(text.length > 0)

  const forged = new OAuth2Client()
  forged.setCredentials({ access_token: 'ya29.not-issued-by-the-mock', expiry_date: Date.now() + 3_600_000 })
  const refused = new GoogleGenAI({ vertexai: true, project: 'proj', location: 'us-central1', httpOptions: { baseUrl: mock.url }, googleAuthOptions: { authClient: forged } })
  await assert.rejects(refused.models.generateContent({ model: 'gemini-2.5-flash', contents: 'x' }), (err: Error & { status?: number }) => err.status === 401)
})
