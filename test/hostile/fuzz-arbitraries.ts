// fast-check generators of hostile input: frames and envelopes, handshakes, raw TCP bytes.
import { isUtf8 } from 'node:buffer'
import fc from 'fast-check'
import type { FrameToSend, HandshakeToSend } from './fuzz-harness.js'
import { MAX_PAYLOAD } from './fuzz-model.js'

/** A frame with a short description, so counterexamples stay readable when frames are large. */
export class Frame implements FrameToSend {
  readonly label: string
  readonly bytes: Buffer
  readonly binary: boolean
  readonly cuts: readonly number[]
  readonly repeat: number

  constructor (label: string, bytes: Buffer, binary: boolean, cuts: readonly number[] = [], repeat = 1) {
    this.label = label
    this.bytes = bytes
    this.binary = binary
    this.cuts = cuts
    this.repeat = repeat
  }

  static text (label: string, text: string): Frame {
    return new Frame(label, Buffer.from(text, 'utf8'), false)
  }

  [fc.toStringMethod] (): string {
    return this.toString()
  }

  toString (): string {
    const size = this.bytes.length
    let shown: string
    if (this.binary) shown = `<${this.bytes.subarray(0, 24).toString('hex')}${size > 24 ? '…' : ''}>`
    else if (isUtf8(this.bytes)) shown = JSON.stringify(abbreviate(this.bytes.toString('utf8')))
    else shown = `<invalid UTF-8 ${this.bytes.subarray(0, 24).toString('hex')}${size > 24 ? '…' : ''}>`
    const fragments = this.cuts.length === 0 ? '' : ` in ${this.cuts.length + 1} fragments at ${this.cuts.join(',')}`
    return `${this.label}: ${this.binary ? 'binary' : 'text'} ${shown} (${size} bytes)${fragments}${this.repeat === 1 ? '' : ` ${this.repeat} times`}`
  }
}

function abbreviate (text: string): string {
  return text.length <= 160 ? text : `${text.slice(0, 80)}…${text.slice(-40)}`
}

const json = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3, stringUnit: 'binary' }) }
)

/** Ids the protocol allows: non-negative safe integers. */
const validId = fc.oneof(fc.nat(1000), fc.constantFrom(0, 2 ** 31, 2 ** 53 - 1), fc.nat())

/** Ids it does not: negative, fractional, unsafe, not numbers. */
const badId = fc.oneof(
  fc.integer({ min: -(2 ** 31), max: -1 }),
  fc.double({ noInteger: true, noDefaultInfinity: true, noNaN: true }),
  fc.constantFrom<unknown>(2 ** 53, 1e300, -0.5, 1.5, '1', '', null, true, false, [], {}, [1], { id: 1 })
)

/** Number tokens whose JSON value is (or is not) a valid id, written the unusual way. */
const idToken = fc.constantFrom('1.0', '1e2', '-0', '0.0', '0.5', '-1', '9007199254740991', '9007199254740992', '1e308', '1e400', '"1"', 'null', '[]', '{}')

/** Request data, with the strings that make the server's handler fail, expose, reject or go async. */
const requestData = fc.oneof(
  { weight: 4, arbitrary: json },
  {
    weight: 2,
    arbitrary: fc.tuple(fc.constantFrom('throw', 'expose', 'expose-plain', 'reject', 'async', 'nothing'), fc.string({ maxLength: 4 }))
      .map(([head, tail]) => head + tail)
  }
)

const loneSurrogate = fc.tuple(fc.string({ maxLength: 4 }), fc.integer({ min: 0xd800, max: 0xdfff }), fc.string({ maxLength: 4 }))
  .map(([before, unit, after]) => before + String.fromCharCode(unit) + after)

/** Topics of about 255 UTF-8 bytes, ending with a character of 1 to 4 bytes. */
const limitTopic = fc.tuple(fc.integer({ min: 248, max: 262 }), fc.constantFrom('a', 'é', '€', '😀'))
  .map(([bytes, last]) => 'a'.repeat(Math.max(0, bytes - Buffer.byteLength(last))) + last)

const topic = fc.oneof(
  { weight: 4, arbitrary: fc.string({ minLength: 1, maxLength: 20 }) },
  {
    weight: 3,
    arbitrary: fc.tuple(fc.constantFrom('deny', 'boom', 'reject', 'later', 'news'), fc.string({ maxLength: 6 }))
      .map(([head, tail]) => head + tail)
  },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 60 }) },
  { weight: 2, arbitrary: loneSurrogate },
  { weight: 2, arbitrary: limitTopic },
  { weight: 1, arbitrary: fc.constantFrom<unknown>('', 0, null, ['news'], { topic: 'news' }) }
)

const envelope = (label: string, value: unknown[]): Frame => Frame.text(label, JSON.stringify(value))

/** Well-formed client envelopes of every kind, and subscribe/unsubscribe pairs on one topic. */
const wellFormed: fc.Arbitrary<Frame[]> = fc.oneof(
  json.map((data) => [envelope('message', ['m', data])]),
  fc.tuple(validId, requestData).map(([id, data]) => [envelope('request', ['q', id, data])]),
  fc.tuple(fc.constantFrom('s', 'u'), validId, topic).map(([kind, id, name]) => [envelope(kind === 's' ? 'subscribe' : 'unsubscribe', [kind, id, name])]),
  fc.tuple(validId, validId, topic, fc.boolean()).map(([a, b, name, twice]) => {
    const frames = [envelope('subscribe', ['s', a, name]), envelope('unsubscribe', ['u', b, name])]
    return twice ? [...frames, envelope('unsubscribe again', ['u', b, name])] : frames
  })
)

/** Envelopes of a known kind with the wrong number of fields or an unusable id. */
const misshapen: fc.Arbitrary<Frame[]> = fc.oneof(
  fc.array(json, { maxLength: 4 }).filter((rest) => rest.length !== 1).map((rest) => [envelope('message arity', ['m', ...rest])]),
  fc.tuple(fc.constantFrom('q', 's', 'u'), validId, fc.array(json, { maxLength: 3 }).filter((rest) => rest.length !== 1))
    .map(([kind, id, rest]) => [envelope(`${kind} arity`, [kind, id, ...rest])]),
  fc.tuple(fc.constantFrom('q', 's', 'u'), badId, topic).map(([kind, id, last]) => [envelope(`${kind} bad id`, [kind, id, last])]),
  fc.tuple(fc.constantFrom('q', 's', 'u', 'x'), idToken, fc.constantFrom(' ', '', '\n\t'))
    .map(([kind, token, space]) => [Frame.text(`${kind} id token`, `[${space}"${kind}"${space},${space}${token}${space},${space}"news"${space}]`)])
)

/** Kinds the server does not know, with and without a usable id. */
const unknownKind: fc.Arbitrary<Frame[]> = fc.tuple(
  fc.oneof(
    fc.string({ maxLength: 3 }).filter((kind) => !['m', 'q', 's', 'u'].includes(kind)),
    fc.constantFrom('r', 'w', 'g', 't', 'M', 'mm', 'q '),
    json.filter((kind) => typeof kind !== 'string')
  ),
  fc.option(fc.oneof(validId, badId), { nil: undefined }),
  fc.array(json, { maxLength: 2 })
).map(([kind, id, rest]) => [envelope('unknown kind', id === undefined ? [kind] : [kind, id, ...rest])])

/** JSON that is not an array, text that is not JSON, and bytes that are not UTF-8. */
const notEnvelopes: fc.Arbitrary<Frame[]> = fc.oneof(
  json.filter((value) => !Array.isArray(value)).map((value) => [Frame.text('not an array', JSON.stringify(value))]),
  fc.string({ unit: 'binary', maxLength: 40 }).map((text) => [Frame.text('random text', text)]),
  fc.uint8Array({ maxLength: 64 }).map((bytes) => [new Frame('random bytes as text', Buffer.from(bytes), false)]),
  fc.tuple(json, fc.nat(), fc.integer({ min: 0x80, max: 0xff })).map(([data, at, byte]) => {
    const bytes = Buffer.from(JSON.stringify(['m', data]))
    bytes[at % bytes.length] = byte
    return [new Frame('envelope with one byte replaced', bytes, false)]
  }),
  fc.tuple(fc.constantFrom('s', 'u'), validId, fc.uint8Array({ minLength: 1, maxLength: 8 })).map(([kind, id, junk]) => {
    const bytes = Buffer.concat([Buffer.from(`["${kind}",${id},"`), Buffer.from(junk), Buffer.from('"]')])
    return [new Frame('topic with raw bytes', bytes, false)]
  })
)

function nested (depth: number, shape: 'array' | 'object' | 'mixed'): string {
  let open = ''
  let close = ''
  for (let i = 0; i < depth; i++) {
    const object = shape === 'object' || (shape === 'mixed' && i % 2 === 1)
    open += object ? '{"a":' : '['
    close = (object ? '}' : ']') + close
  }
  return open + (shape === 'array' ? '' : '1') + close
}

/** Deeply nested data in every position of an envelope: up to about 10,000 levels. */
const deep: fc.Arbitrary<Frame[]> = fc.record({
  depth: fc.oneof(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 100, max: 12_000 })),
  shape: fc.constantFrom('array', 'object', 'mixed'),
  place: fc.constantFrom('m', 'q', 's', 'kind', 'whole')
}).map(({ depth, shape, place }) => {
  const data = nested(depth, shape as 'array' | 'object' | 'mixed')
  const text = place === 'm'
    ? `["m",${data}]`
    : place === 'q' ? `["q",7,${data}]` : place === 's' ? `["s",7,${data}]` : place === 'kind' ? `[${data},7]` : `[${data}]`
  return [Frame.text(`depth ${depth} ${shape} in ${place}`, text)]
})

/** Binary frames: the message type byte 0x00, the server-only 0x01, anything else, and empty. */
const binary: fc.Arbitrary<Frame[]> = fc.tuple(
  fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constant(1) }, { weight: 2, arbitrary: fc.integer({ min: 0, max: 255 }) }),
  fc.uint8Array({ maxLength: 64 }),
  fc.boolean()
).map(([type, payload, empty]) => [new Frame('binary', empty ? Buffer.alloc(0) : Buffer.concat([Buffer.from([type]), payload]), true)])

/** Messages within a few bytes of maxPayload, on either side. */
const sized: fc.Arbitrary<Frame[]> = fc.tuple(fc.integer({ min: -8, max: 8 }), fc.boolean(), fc.boolean()).map(([offset, isBinary, raw]) => {
  const size = MAX_PAYLOAD + offset
  if (isBinary) return [new Frame(`binary of maxPayload${offset >= 0 ? '+' : ''}${offset}`, Buffer.alloc(size), true)]
  const text = raw ? 'x'.repeat(size) : `["m","${'x'.repeat(size - 8)}"]`
  return [Frame.text(`text of maxPayload${offset >= 0 ? '+' : ''}${offset}`, text)]
})

/** Bursts of small messages, some beyond the rate limit's bucket. */
const burst: fc.Arbitrary<Frame[]> = fc.tuple(fc.integer({ min: 2, max: 260 }), fc.boolean()).map(([repeat, isBinary]) => [
  isBinary ? new Frame('burst', Buffer.from([0, 1]), true, [], repeat) : new Frame('burst', Buffer.from('["m",1]'), false, [], repeat)
])

const frameGroup: fc.Arbitrary<Frame[]> = fc.oneof(
  { weight: 30, arbitrary: wellFormed },
  { weight: 14, arbitrary: misshapen },
  { weight: 8, arbitrary: unknownKind },
  { weight: 10, arbitrary: notEnvelopes },
  { weight: 6, arbitrary: deep },
  { weight: 8, arbitrary: binary },
  { weight: 4, arbitrary: sized },
  { weight: 2, arbitrary: burst }
)

/** Cuts some frames into fragments (continuation frames) at arbitrary byte offsets. */
const fragmented: fc.Arbitrary<Frame[]> = fc.tuple(frameGroup, fc.oneof(
  { weight: 3, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.uniqueArray(fc.nat(), { minLength: 1, maxLength: 4 }) }
))
  .map(([frames, cuts]) => {
    if (cuts === null) return frames
    return frames.map((frame) => {
      const at = [...new Set(cuts.map((cut) => cut % (frame.bytes.length + 1)))].sort((a, b) => a - b)
      return new Frame(frame.label, frame.bytes, frame.binary, at, frame.repeat)
    })
  })

/** A sequence of frames for one socket. */
export const frames: fc.Arbitrary<Frame[]> = fc.array(fragmented, { minLength: 1, maxLength: 6 }).map((groups) => groups.flat())

// Header values the ws client accepts: visible ASCII, space, tab and obs-text.
const headerChar = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) },
  { weight: 1, arbitrary: fc.constant(0x09) },
  { weight: 1, arbitrary: fc.integer({ min: 0x80, max: 0xff }) }
).map((code) => String.fromCharCode(code))
const headerValue = fc.string({ unit: headerChar, maxLength: 80 }).map((value) => value.trim())

const base64url = fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'), minLength: 0, maxLength: 40 })

/** Cookie headers: forged, malformed, duplicated, badly encoded and oversized session cookies. */
const cookie = fc.oneof(
  headerValue,
  fc.tuple(base64url, base64url).map(([id, signature]) => `sid=${id}.${signature}`),
  base64url.map((id) => `sid=${id}`),
  fc.tuple(base64url, base64url).map(([a, b]) => `sid=${a}; sid=${b}.x`),
  fc.constantFrom('sid=', 'sid', '=', ';;;', 'sid=%E0%A4%A', 'sid=%', 'sid="quoted.value"', 'sid=a.b.c', '__proto__=x; sid=y', 'sid=%00'),
  fc.integer({ min: 4000, max: 20_000 }).map((size) => `sid=${'a'.repeat(size)}`)
)

/** Origins, some of which name the server itself; `{port}` is filled in once the port is known. */
const origin = fc.oneof(
  fc.constantFrom('http://127.0.0.1:{port}', 'HTTP://127.0.0.1:{port}', 'http://127.0.0.1:{port}/', 'null', 'http://evil.example', 'http://localhost:{port}', 'http://127.0.0.1:1', 'https://127.0.0.1:{port}', 'file://'),
  headerValue
)

const resumeValue = fc.oneof(
  fc.tuple(fc.stringMatching(/^[A-Za-z0-9_-]{1,32}$/), fc.stringMatching(/^\d{1,15}$/)).map(([epoch, seq]) => `${epoch}.${seq}`),
  fc.string({ unit: 'binary', maxLength: 40 }).map((value) => encodeURIComponent(value)),
  fc.string({ maxLength: 40 }).map((value) => value.replaceAll('#', '').replaceAll('&', '')),
  fc.constantFrom('', '.', 'a.', '.1', 'a.-1', 'a.1e3', 'a.99999999999999999999', '%zz.1', 'a+b.1', `${'a'.repeat(40)}.1`)
)

/** Query strings: resume points of every shape, repeated parameters, and the slow-connect switch. */
const query = fc.tuple(
  fc.oneof(
    { weight: 2, arbitrary: fc.constant('') },
    { weight: 4, arbitrary: resumeValue.map((value) => `glue_resume=${value}`) },
    { weight: 1, arbitrary: fc.tuple(resumeValue, resumeValue).map(([a, b]) => `glue_resume=${a}&glue_resume=${b}`) },
    { weight: 1, arbitrary: fc.constantFrom('glue_resume', 'glue_resume[]=a.1', 'glue_resume[x]=a.1', '&&&', '=', '%') }
  ),
  fc.boolean()
).map(([base, slow]) => slow ? (base === '' ? 'fuzz_slow=1' : `${base}&fuzz_slow=1`) : base)

const fuzzedHandshake: fc.Arbitrary<HandshakeToSend> = fc.record({
  path: fc.oneof({ weight: 6, arbitrary: fc.constant('/ws') }, { weight: 1, arbitrary: fc.constantFrom('/ws/', '/WS', '//ws', '/ws%00', '/ws;x') }),
  query,
  protocols: fc.constantFrom<readonly string[] | undefined>(['glue.v1'], ['glue.v1'], undefined, ['chat'], ['chat', 'glue.v1'], ['glue.v2'], ['glue.v1', 'glue.v2']),
  cookie: fc.option(cookie, { nil: undefined }),
  origin: fc.option(origin, { nil: undefined })
})

const plainHandshake = (protocols: readonly string[] | undefined): HandshakeToSend => ({ path: '/ws', query: '', protocols, cookie: undefined, origin: undefined })

/** Mostly plain glue.v1 handshakes, some raw ones, and fuzzed ones. */
export const handshakes: fc.Arbitrary<HandshakeToSend> = fc.oneof(
  { weight: 6, arbitrary: fc.constant(plainHandshake(['glue.v1'])) },
  { weight: 2, arbitrary: fc.constant(plainHandshake(undefined)) },
  { weight: 3, arbitrary: fuzzedHandshake }
)

/** A hand-written upgrade request: mostly valid, sometimes with broken websocket headers. */
export interface RawHead {
  readonly glue: boolean
  readonly key: string
  readonly version: string
  readonly extraLines: readonly string[]
}

const headerName = fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,15}$/)

export const rawHeads: fc.Arbitrary<RawHead> = fc.oneof(
  { weight: 5, arbitrary: fc.boolean().map((glue): RawHead => ({ glue, key: 'dGhlIHNhbXBsZSBub25jZQ==', version: '13', extraLines: [] })) },
  {
    weight: 2,
    arbitrary: fc.record({
      glue: fc.boolean(),
      key: fc.oneof(fc.constant('dGhlIHNhbXBsZSBub25jZQ=='), headerValue, base64url),
      version: fc.oneof(fc.constant('13'), fc.constantFrom('8', '14', '', '13, 8', '0x0d'), headerValue),
      extraLines: fc.array(fc.oneof(
        fc.tuple(fc.constantFrom('Sec-WebSocket-Protocol', 'Sec-WebSocket-Extensions', 'Cookie', 'Origin', 'Upgrade', 'Connection'), headerValue)
          .map(([name, value]) => `${name}: ${value}`),
        fc.constantFrom('Sec-WebSocket-Protocol: glue.v1, glue.v1', 'Sec-WebSocket-Protocol: ,', 'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=99',
          'Sec-WebSocket-Extensions: permessage-deflate', 'Sec-WebSocket-Extensions: x-unknown', 'Transfer-Encoding: chunked', 'Content-Length: 5'),
        fc.tuple(headerName, headerValue).map(([name, value]) => `${name}: ${value}`)
      ), { maxLength: 3 })
    })
  }
)

/** Builds one masked client frame with arbitrary header bits, length encoding and payload. */
const clientFrame = fc.record({
  fin: fc.boolean(),
  rsv: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 7 }) }),
  opcode: fc.oneof({ weight: 3, arbitrary: fc.constantFrom(0x0, 0x1, 0x2, 0x8, 0x9, 0xa) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 15 }) }),
  masked: fc.oneof({ weight: 5, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  encoding: fc.constantFrom('short', 'short', 'u16', 'u64', 'huge'),
  payload: fc.uint8Array({ maxLength: 140 })
}).map(({ fin, rsv, opcode, masked, encoding, payload }) => {
  const length = payload.length
  let lengthBytes: Buffer
  if (encoding === 'huge') {
    lengthBytes = Buffer.alloc(9)
    lengthBytes[0] = 127
    lengthBytes.writeBigUInt64BE(0x7fff_ffff_ffff_ffffn, 1)
  } else if (encoding === 'u64') {
    lengthBytes = Buffer.alloc(9)
    lengthBytes[0] = 127
    lengthBytes.writeBigUInt64BE(BigInt(length), 1)
  } else if (encoding === 'u16' || length > 125) {
    lengthBytes = Buffer.alloc(3)
    lengthBytes[0] = 126
    lengthBytes.writeUInt16BE(length, 1)
  } else {
    lengthBytes = Buffer.from([length])
  }
  lengthBytes[0] = (lengthBytes[0] as number) | (masked ? 0x80 : 0)
  const mask = Buffer.from([0x12, 0x34, 0x56, 0x78])
  const body = Buffer.from(payload.map((byte, i) => masked ? byte ^ (mask[i % 4] as number) : byte))
  return Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | (rsv << 4) | opcode]), lengthBytes, masked ? mask : Buffer.alloc(0), body])
})

/** Bytes after the upgrade: random noise and sequences of well- and ill-formed frames, in chunks. */
export const rawBytes: fc.Arbitrary<Buffer[]> = fc.array(fc.oneof(
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 200 }).map((bytes) => Buffer.from(bytes)) },
  { weight: 3, arbitrary: fc.array(clientFrame, { minLength: 1, maxLength: 4 }).map((list) => Buffer.concat(list)) }
), { minLength: 1, maxLength: 3 })
