import { test } from 'tap'
import { encodeData } from '../../plugin/wire/encode.js'
import {
  envelopeBody,
  envelopePrefix,
  gapEnvelope,
  GLUE_PROTOCOL,
  isTopic,
  MAX_ENVELOPE_DEPTH,
  nestsDeeperThan,
  parseInbound,
  parseResume,
  replyEnvelope,
  RESUME_PARAM,
  welcomeEnvelope
} from '../../plugin/wire/protocol.js'

const text = (json: string): ReturnType<typeof parseInbound> => parseInbound(Buffer.from(json), false)
const invalid = (code: number, reason: string, id?: number, unknownKind = false): unknown => ({ kind: 'invalid', code, reason, id, unknownKind })

test('names the subprotocol and the resume parameter', (t) => {
  t.equal(GLUE_PROTOCOL, 'glue.v1')
  t.equal(RESUME_PARAM, 'glue_resume')
  t.end()
})

test('parses binary message envelopes and refuses other binary frames', (t) => {
  const parsed = parseInbound(Buffer.from([0x00, 7, 8]), true)
  t.same(parsed, { kind: 'message', data: Buffer.from([7, 8]) }, 'type byte 0 carries the data after it')
  t.same(parseInbound(Buffer.from([0x00]), true), { kind: 'message', data: Buffer.alloc(0) }, 'an empty message')
  t.same(parseInbound(Buffer.alloc(0), true), invalid(1008, 'unknown binary envelope'))
  t.same(parseInbound(Buffer.from([0x01, 1]), true), invalid(1008, 'unknown binary envelope'), 'a topic envelope only goes to clients')
  t.end()
})

test('parses message, request and subscription envelopes', (t) => {
  t.same(text('["m","hello"]'), { kind: 'message', data: 'hello', value: 'hello' })
  t.same(text('["m",{"a":[1,2]}]'), { kind: 'message', data: '{"a":[1,2]}', value: { a: [1, 2] } }, 'other values as their JSON text, and the value for messageSchema')
  t.same(text('["m",null]'), { kind: 'message', data: 'null', value: null })
  t.same(text('["q",0,{"op":"x"}]'), { kind: 'request', id: 0, data: { op: 'x' } })
  t.same(text('["q",9007199254740991,null]'), { kind: 'request', id: 9007199254740991, data: null }, 'the largest safe id')
  t.same(text('["s",1,"news"]'), { kind: 'subscribe', id: 1, topic: 'news' })
  t.same(text('["u",2,"news"]'), { kind: 'unsubscribe', id: 2, topic: 'news' })
  t.end()
})

test('refuses what is not a JSON array with 1007', (t) => {
  t.same(text('not json'), invalid(1007, 'envelope is not JSON'))
  t.same(text('{"m":1}'), invalid(1007, 'envelope is not an array'))
  t.same(text('"m"'), invalid(1007, 'envelope is not an array'))
  t.end()
})

test('refuses misshapen envelopes with 1008, keeping a usable id for an error reply', (t) => {
  t.same(text('["m"]'), invalid(1008, 'message envelope takes 1 field'))
  t.same(text('["m",1,2]'), invalid(1008, 'message envelope takes 1 field'))
  for (const id of ['"one"', '-1', '1.5', '9007199254740992', 'null']) {
    t.same(text(`["q",${id},{}]`), invalid(1008, 'request envelope needs an id and data'), `request id ${id}`)
    t.same(text(`["s",${id},"t"]`), invalid(1008, 'subscription envelope needs an id and a topic'), `subscription id ${id}`)
  }
  t.same(text('["q",7]'), invalid(1008, 'request envelope needs an id and data', 7))
  t.same(text('["q",7,1,2]'), invalid(1008, 'request envelope needs an id and data', 7))
  t.same(text('["s",8]'), invalid(1008, 'subscription envelope needs an id and a topic', 8))
  t.same(text('["u",8,"t","x"]'), invalid(1008, 'subscription envelope needs an id and a topic', 8))
  t.same(text('["s",9,""]'), invalid(1008, 'invalid topic', 9))
  t.same(text('["u",9,42]'), invalid(1008, 'invalid topic', 9))
  t.same(text('["s",9,"\\ud800"]'), invalid(1008, 'invalid topic', 9), 'a lone surrogate')
  t.end()
})

test('an unknown kind is marked as such, with its id when it has one', (t) => {
  t.same(text('["x",5,"future"]'), invalid(1008, 'unknown envelope kind', 5, true))
  t.same(text('["x"]'), invalid(1008, 'unknown envelope kind', undefined, true))
  t.same(text('[]'), invalid(1008, 'unknown envelope kind', undefined, true))
  t.same(text('[1,2]'), invalid(1008, 'unknown envelope kind', 2, true))
  t.end()
})

test(`accepts nesting up to ${MAX_ENVELOPE_DEPTH} levels and refuses deeper before parsing`, (t) => {
  t.equal(MAX_ENVELOPE_DEPTH, 64)
  // The envelope's own array is the first level.
  const nested = (levels: number, open = '[', close = ']'): string => open.repeat(levels) + close.repeat(levels)
  const deepest = `["m",${nested(MAX_ENVELOPE_DEPTH - 1)}]`
  t.same(text(deepest), { kind: 'message', data: nested(MAX_ENVELOPE_DEPTH - 1), value: JSON.parse(nested(MAX_ENVELOPE_DEPTH - 1)) })
  t.same(text(`["m",${nested(MAX_ENVELOPE_DEPTH)}]`), invalid(1008, 'envelope nested too deeply'))
  const objects = `["q",1,${'{"a":'.repeat(MAX_ENVELOPE_DEPTH)}1${'}'.repeat(MAX_ENVELOPE_DEPTH)}]`
  t.same(text(objects), invalid(1008, 'envelope nested too deeply'), 'objects count too')
  // A frame far too deep to parse is refused as quickly as any other.
  t.same(text('['.repeat(100_000)), invalid(1008, 'envelope nested too deeply'))
  t.end()
})

test('nestsDeeperThan counts brackets outside strings only', (t) => {
  t.equal(nestsDeeperThan(Buffer.from('[[]]'), 4), false, 'a frame no longer than the bound cannot be deeper')
  t.equal(nestsDeeperThan(Buffer.from('[[]]'), 2), false, 'exactly the bound')
  t.equal(nestsDeeperThan(Buffer.from('[[[]]]'), 2), true)
  t.equal(nestsDeeperThan(Buffer.from('[[],[],[]]'), 2), false, 'siblings do not add up')
  t.equal(nestsDeeperThan(Buffer.from('["[[[[[[", "]]"]'), 2), false, 'brackets in strings')
  t.equal(nestsDeeperThan(Buffer.from('["\\"[[[[[[", {}]'), 2), false, 'an escaped quote does not end the string')
  t.equal(nestsDeeperThan(Buffer.from('["\\\\", [[[]]]]'), 3), true, 'an escaped backslash does')
  t.equal(nestsDeeperThan(Buffer.from('["é€😀", [[]]]'), 2), true, 'multi-byte text in between')
  t.end()
})

test('isTopic takes non-empty, well-formed strings of at most 255 UTF-8 bytes', (t) => {
  for (const topic of ['a', 'news/ü', 'x'.repeat(255), 'é'.repeat(127), '😀'.repeat(63)]) t.ok(isTopic(topic), `${topic.length} characters`)
  for (const topic of ['', 'x'.repeat(256), 'é'.repeat(128), 'a\ud800', '\udc00b', 42, null, undefined, ['a']]) {
    t.notOk(isTopic(topic), JSON.stringify(topic) ?? String(topic))
  }
  t.end()
})

test('envelopeBody holds everything after the sequence number, in memory of its own', (t) => {
  const plain = envelopeBody(undefined, encodeData('hi'))
  t.equal(plain.toString(), '"hi"]')
  t.equal(plain.buffer.byteLength, plain.length, 'not a slice of the shared pool')
  t.equal(envelopeBody(undefined, encodeData({ n: 1 })).toString(), '{"n":1}]')
  t.equal(envelopeBody('news', encodeData('hi')).toString(), '"news","hi"]')
  t.equal(envelopeBody('é"', encodeData([1])).toString(), '"é\\"",[1]]', 'the topic as a JSON string')

  const own = encodeData(Buffer.from([1, 2, 3]))
  t.equal(envelopeBody(undefined, own), own.payload, 'a binary payload with memory of its own is kept as is')
  const pooled = Buffer.from([9, 8, 7])
  const decoded = { payload: pooled, binary: true, json: undefined, text: undefined }
  const copy = envelopeBody(undefined, decoded)
  t.not(copy, pooled, 'a slice is copied')
  t.same(copy, pooled)
  t.equal(copy.buffer.byteLength, copy.length)
  t.same(envelopeBody('ab', own), Buffer.from([2, 0x61, 0x62, 1, 2, 3]), 'binary topic: its byte length, the topic, the payload')
  t.same(envelopeBody('é', own), Buffer.from([2, 0xc3, 0xa9, 1, 2, 3]), 'the length counts UTF-8 bytes')
  t.end()
})

test('envelopePrefix starts each envelope with its kind and sequence number', (t) => {
  t.equal(envelopePrefix(false, 5, false).toString(), '["m",5,')
  t.equal(envelopePrefix(true, 12, false).toString(), '["t",12,')
  t.same(envelopePrefix(false, 3, true), Buffer.from([0x00, 0, 0, 0, 0, 0, 3]))
  t.same(envelopePrefix(true, 0x010203040506, true), Buffer.from([0x01, 1, 2, 3, 4, 5, 6]))
  t.same(envelopePrefix(false, 2 ** 48 - 1, true), Buffer.from([0, 255, 255, 255, 255, 255, 255]), 'the largest 48-bit number')
  t.end()
})

test('replyEnvelope builds success and error replies', (t) => {
  const ok = replyEnvelope(1, null, { a: 1 })
  t.same(ok, { payload: Buffer.from('["r",1,1,{"a":1}]'), binary: false, json: '["r",1,1,{"a":1}]', text: undefined })
  t.equal(replyEnvelope(2, null).json, '["r",2,1,null]', 'no value is null')
  t.equal(replyEnvelope(3, null, () => 1).json, '["r",3,1,null]', 'a function is null, as in arrays')
  t.equal(replyEnvelope(4, null, Symbol('s')).json, '["r",4,1,null]')
  t.equal(replyEnvelope(5, null, 'é').json, '["r",5,1,"é"]')
  t.equal(replyEnvelope(6, { code: 'GLUE_X', message: 'no' }).json, '["r",6,0,{"code":"GLUE_X","message":"no"}]')
  t.equal(replyEnvelope(7, null, 'é').payload.length, Buffer.byteLength('["r",7,1,"é"]'), 'UTF-8 bytes')
  t.end()
})

test('welcome and gap envelopes', (t) => {
  t.same(welcomeEnvelope('AbC-_1', 7), { payload: Buffer.from('["w","AbC-_1",7]'), binary: false, json: '["w","AbC-_1",7]', text: undefined })
  t.equal(gapEnvelope(null).json, '["g",null]', 'an unknown number of lost messages')
  t.equal(gapEnvelope(0).json, '["g",0]')
  t.equal(gapEnvelope(15).json, '["g",15]')
  t.end()
})

test('parseResume reads epoch.seq and treats anything else as no resume point', (t) => {
  t.same(parseResume('AbC-_9.0'), { epoch: 'AbC-_9', seq: 0 })
  t.same(parseResume(`${'e'.repeat(32)}.${'9'.repeat(15)}`), { epoch: 'e'.repeat(32), seq: 999_999_999_999_999 }, 'the longest accepted')
  for (const value of [undefined, 5, ['a.1', 'b.2'], '', 'a', 'a.', '.1', 'a.b', 'a.-1', 'a.1.2', 'a b.1', 'é.1', `${'e'.repeat(33)}.1`, `a.${'9'.repeat(16)}`, 'a.1 ']) {
    t.equal(parseResume(value), undefined, JSON.stringify(value) ?? String(value))
  }
  t.end()
})
