import { test } from 'tap'
import type { ClusterMessage } from '../plugin/index.js'
import { CODEC_VERSION, decodeClusterMessage, encodeClusterMessage } from '../plugin/redis/index.js'
import { encodeData } from '../plugin/wire/encode.js'

const MESSAGES: ClusterMessage[] = [
  { kind: 'send', sessionId: 'sid-1', data: encodeData('hello'), volatile: false },
  { kind: 'send', sessionId: 'sid-ü', data: encodeData({ n: 1 }), volatile: true },
  { kind: 'broadcast', data: encodeData(Buffer.from([0, 1, 2])), except: undefined, volatile: false },
  { kind: 'broadcast', data: encodeData([1, 2]), except: 'sid-2', volatile: true },
  { kind: 'publish', topic: 'news/ü', data: encodeData('x'), except: undefined, volatile: false },
  { kind: 'publish', topic: 'room', data: encodeData(''), except: 'me', volatile: false },
  { kind: 'close', sessionId: 'sid-3', code: 4001, reason: 'bye ✓' },
  { kind: 'subscribe', sessionId: 'sid-4', topic: 'a' },
  { kind: 'unsubscribe', sessionId: 'sid-4', topic: 'a' },
  { kind: 'expire', sessionId: 'sid-5' }
]

function comparable (message: ClusterMessage): unknown {
  if (!('data' in message)) return message
  const { data, ...rest } = message
  return { ...rest, payload: data.payload.toString('hex'), binary: data.binary, json: data.json, text: data.text ?? (data.binary || data.json !== undefined ? undefined : data.payload.toString('utf8')) }
}

test('every message kind survives encoding and decoding, with its time', async (t) => {
  for (const message of MESSAGES) {
    const decoded = decodeClusterMessage(encodeClusterMessage(message, 1_763_800_000_123))
    t.same(decoded?.time, 1_763_800_000_123, message.kind)
    t.same(comparable(decoded?.message as ClusterMessage), comparable(message), message.kind)
  }
})

test('the encoding is compact: a small send costs a few bytes over its payload', async (t) => {
  const payload = encodeData('hello')
  const bytes = encodeClusterMessage({ kind: 'send', sessionId: 'a'.repeat(24), data: payload, volatile: false }, Date.now())
  t.equal(bytes.length, 9 + 2 + 24 + payload.payload.length)
  t.equal(bytes[0], CODEC_VERSION, 'the first byte names the version')
})

test('another version, an unknown kind or a truncated buffer decodes to undefined', async (t) => {
  const good = encodeClusterMessage({ kind: 'close', sessionId: 'sid', code: 4000, reason: 'r' }, 0)
  const otherVersion = Buffer.from(good)
  otherVersion[0] = CODEC_VERSION + 1
  t.equal(decodeClusterMessage(otherVersion), undefined, 'another version')
  const unknownKind = Buffer.from(good)
  unknownKind[1] = 99
  t.equal(decodeClusterMessage(unknownKind), undefined, 'unknown kind')
  const kindZero = Buffer.from(good)
  kindZero[1] = 0
  t.equal(decodeClusterMessage(kindZero), undefined, 'kind 0')
  t.equal(decodeClusterMessage(Buffer.from([CODEC_VERSION, 1])), undefined, 'shorter than a header')
  for (let length = 9; length < good.length; length++) {
    t.equal(decodeClusterMessage(good.subarray(0, length)), undefined, `close cut at ${length} bytes`)
  }
  const publish = encodeClusterMessage({ kind: 'publish', topic: 'room', data: encodeData('x'), except: 'me', volatile: false }, 0)
  t.equal(decodeClusterMessage(publish.subarray(0, 9 + 2 + 4 + 1)), undefined, 'publish cut inside except')
  const send = encodeClusterMessage({ kind: 'send', sessionId: 'sid', data: encodeData('x'), volatile: false }, 0)
  t.equal(decodeClusterMessage(send.subarray(0, 10)), undefined, 'send cut inside the session id')
  const subscribe = encodeClusterMessage({ kind: 'subscribe', sessionId: 'sid', topic: 't' }, 0)
  t.equal(decodeClusterMessage(subscribe.subarray(0, 14)), undefined, 'subscribe cut inside the topic')
  const expire = encodeClusterMessage({ kind: 'expire', sessionId: 'sid' }, 0)
  t.equal(decodeClusterMessage(expire.subarray(0, 10)), undefined, 'expire cut inside the session id')
})
