import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { parseClientEvent, SCAN_ABOVE_BYTES } from '../src/realtime/events.ts'

const big = (audio: number) => 'A'.repeat(audio)
const buf = (s: string) => Buffer.from(s, 'utf8')

describe('Realtime client events as governance reads them', () => {
  it('parses small events whole and scans large ones for their type and event id', () => {
    const small = parseClientEvent(buf('{"type":"response.create","event_id":"evt_1","response":{"max_output_tokens":7}}'))
    assert.ok(small.ok)
    assert.equal(small.event.type, 'response.create')
    assert.equal(small.event.eventId, 'evt_1')
    assert.deepEqual(small.event.json.response, { max_output_tokens: 7 })

    const text = `{ "event_id" : "evt_2", "audio": "${big(SCAN_ABOVE_BYTES + 10)}", "nested": {"a": ["x\\"}", {"type": "not-me"}]}, "n": 12.5e3, "ok": true, "type": "input_audio_buffer.append" }`
    const scanned = parseClientEvent(buf(text))
    assert.ok(scanned.ok)
    assert.equal(scanned.event.type, 'input_audio_buffer.append') // the nested "type" is not the event's
    assert.equal(scanned.event.eventId, 'evt_2')
    assert.equal(scanned.event.bytes, Buffer.byteLength(text))
    assert.equal(JSON.parse(text).type, scanned.event.type) // the same answer JSON.parse gives
  })

  it('refuses a large event with two types (also spelled with an escape), and malformed or typeless ones', () => {
    const pad = big(SCAN_ABOVE_BYTES)
    const dup = parseClientEvent(buf(`{"type":"input_audio_buffer.append","audio":"${pad}","type":"response.create"}`))
    assert.ok(!dup.ok && dup.code === 'invalid_event')
    const escaped = parseClientEvent(buf(`{"type":"input_audio_buffer.append","audio":"${pad}","typ\\u0065":"response.create"}`))
    assert.ok(!escaped.ok && escaped.code === 'invalid_event')
    const cut = parseClientEvent(buf(`{"type":"input_audio_buffer.append","audio":"${pad}`))
    assert.ok(!cut.ok && cut.code === 'invalid_json')
    const trailing = parseClientEvent(buf(`{"type":"input_audio_buffer.append","audio":"${pad}"} x`))
    assert.ok(!trailing.ok && trailing.code === 'invalid_json')
    const typeless = parseClientEvent(buf(`{"audio":"${pad}"}`))
    assert.ok(!typeless.ok && typeless.code === 'invalid_event')
    const array = parseClientEvent(buf(`["${pad}"]`))
    assert.ok(!array.ok && array.code === 'invalid_event')
    // The paired pass: the same large event with one type is accepted.
    const one = parseClientEvent(buf(`{"type":"input_audio_buffer.append","audio":"${pad}"}`))
    assert.ok(one.ok && one.event.type === 'input_audio_buffer.append')
  })
})
