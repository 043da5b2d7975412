import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { ModelValueLocator, locateModelValue, replaceRange } from '../src/media/multipart-model.ts'
import { PriceTable } from '../src/pricing/table.ts'
import type { Usage } from '../src/core/usage.ts'

const B = 'XyZ-boundary'
const FORM = Buffer.from(
  `--${B}\r\nContent-Disposition: form-data; name="file"; filename="name=\\"model\\".wav"\r\nContent-Type: audio/wav\r\n\r\n` +
  `RIFF....name="model"....\r\n--${B}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper\r\n--${B}--\r\n`,
  'latin1',
)

function chunks(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = []
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size))
  return out
}

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const c of it) parts.push(c)
  return Buffer.concat(parts)
}

async function* from(list: Buffer[]): AsyncGenerator<Buffer> {
  for (const c of list) yield c
}

describe('the multipart model field, found and rewritten in the stream', () => {
  const start = FORM.indexOf('whisper\r\n--', 0, 'latin1')
  it('is found at the same bytes however the body is cut into chunks (1 byte to all at once); file bytes that look like it are not', () => {
    for (const size of [1, 2, 3, 7, 16, 64, FORM.length]) {
      const l = new ModelValueLocator(B)
      for (const c of chunks(FORM, size)) l.push(c)
      assert.deepEqual(locateModelValue(l), { start, end: start + 'whisper'.length }, `chunks of ${size}`)
    }
  })
  it('is replaced by another name, the rest byte for byte, whatever the chunking', async () => {
    const expected = Buffer.from(FORM.toString('latin1').replace('\r\n\r\nwhisper\r\n', '\r\n\r\nwhisper-1\r\n'), 'latin1')
    for (const size of [1, 5, 33, FORM.length]) {
      const out = await collect(replaceRange(from(chunks(FORM, size)), { start, end: start + 7 }, Buffer.from('whisper-1')))
      assert.ok(out.equals(expected), `chunks of ${size}`)
    }
  })
})

describe('unit prices (figures from OpenAI\'s pricing page, written here)', () => {
  const table = new PriceTable()
  const usage = (u: Partial<Usage>): Usage => ({ promptTokens: 0, completionTokens: 0, totalTokens: 0, cachedTokens: 0, reasoningTokens: 0, ...u })
  const cost = (model: string, u: Usage) => PriceTable.cost(table.priceOf(model)!, u)
  it('prices images, audio minutes, characters and tokens by their own units', () => {
    assert.equal(cost('dall-e-3', usage({ media: { images: { count: 3, size: '1024x1024', quality: 'standard' } } })), 0.12)
    // A size the table does not list is charged as the dearest listed one (never under).
    assert.equal(cost('dall-e-3', usage({ media: { images: { count: 1, size: '2048x2048', quality: 'standard' } } })), 0.12)
    assert.ok(Math.abs(cost('whisper-1', usage({ media: { audioSeconds: 90 } })) - 0.009) < 1e-12)
    assert.ok(Math.abs(cost('tts-1-hd', usage({ media: { characters: 1000 } })) - 0.03) < 1e-12)
    assert.ok(Math.abs(cost('gpt-image-1', usage({ promptTokens: 1000, completionTokens: 4160, media: { imageInputTokens: 600 } })) - (400 * 5 + 600 * 10 + 4160 * 40) / 1e6) < 1e-12)
    assert.ok(Math.abs(cost('gpt-4o-transcribe', usage({ promptTokens: 500, completionTokens: 100, media: { audioInputTokens: 500 } })) - (500 * 6 + 100 * 10) / 1e6) < 1e-12)
    assert.equal(cost('omni-moderation-latest', usage({ media: {} })), 0)
    // Token-priced models keep the plain arithmetic when no media units are reported.
    assert.ok(Math.abs(cost('gpt-4o-mini-tts', usage({ promptTokens: 10, completionTokens: 1000 })) - (10 * 0.6 + 1000 * 12) / 1e6) < 1e-12)
  })
})
