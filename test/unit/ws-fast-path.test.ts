import { once } from 'node:events'
import { Duplex } from 'node:stream'
import { test, type Test } from 'tap'
import * as ws from 'ws'
import WebSocket, { WebSocketServer } from 'ws'
import { encodeData } from '../../plugin/wire/encode.js'
import { constants as zlibConstants, inflateRawSync } from 'node:zlib'
import { CoalescingWriter, deflateMessage, directTransport, frameHead, frameOf, isPlain, sharedDeflateOf, storedBlock } from '../../plugin/wire/ws-fast-path.js'

// ws's own framing of the same payload is the reference (its Sender is exported, not typed).
function wsFrame (payload: Buffer, binary: boolean): Buffer {
  const parts = (ws as unknown as { Sender: { frame: (data: Buffer, options: object) => Buffer[] } }).Sender
    .frame(payload, { fin: true, rsv1: false, opcode: binary ? 2 : 1, mask: false, readOnly: false })
  return Buffer.concat(parts)
}

test('frameHead gives the 2-, 4- and 10-byte heads ws writes, for text and binary', (t) => {
  for (const length of [0, 1, 125, 126, 127, 65_535, 65_536, 70_000]) {
    for (const binary of [false, true]) {
      const payload = Buffer.alloc(length, 0x61)
      const head = frameHead(length, binary)
      t.same(Buffer.concat([head, payload]), wsFrame(payload, binary), `${length} bytes, ${binary ? 'binary' : 'text'}`)
    }
  }
  t.end()
})

test('frameHead appends a prefix that counts as the start of the payload', (t) => {
  const prefix = Buffer.from('["m",1,')
  const body = Buffer.from('"hi"]')
  const head = frameHead(prefix.length + body.length, false, prefix)
  t.equal(head.length, 2 + prefix.length)
  t.same(Buffer.concat([head, body]), wsFrame(Buffer.concat([prefix, body]), false))
  const long = Buffer.alloc(200, 0x62)
  t.same(Buffer.concat([frameHead(prefix.length + long.length, true, prefix), long]), wsFrame(Buffer.concat([prefix, long]), true))
  t.end()
})

test('frameOf frames encoded data in one buffer', (t) => {
  t.same(frameOf(encodeData('hello')), wsFrame(Buffer.from('hello'), false))
  t.same(frameOf(encodeData({ n: 1 })), wsFrame(Buffer.from('{"n":1}'), false))
  t.same(frameOf(encodeData(Buffer.alloc(300, 1))), wsFrame(Buffer.alloc(300, 1), true))
  t.end()
})

/** A server-side ws socket and its client, over loopback; closed in teardown. */
async function socketPair (t: Test, perMessageDeflate: boolean | ws.PerMessageDeflateOptions = false): Promise<{ server: WebSocket, client: WebSocket }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate })
  await once(wss, 'listening')
  const port = (wss.address() as { port: number }).port
  const client = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: perMessageDeflate !== false })
  const [[server]] = await Promise.all([once(wss, 'connection') as Promise<[WebSocket]>, once(client, 'open')])
  t.teardown(async () => {
    client.terminate()
    server.terminate()
    await new Promise((resolve) => wss.close(resolve))
  })
  return { server: server as WebSocket, client }
}

test('isPlain is true only without a negotiated extension', async (t) => {
  const plain = await socketPair(t)
  const deflate = await socketPair(t, true)
  t.equal(isPlain(plain.server), true)
  t.equal(isPlain(deflate.server), false)
})

test('directTransport gives the TCP socket only when nothing of ws is in the way', async (t) => {
  const { server, client } = await socketPair(t)
  const transport = directTransport(server, true)
  t.ok(transport instanceof Duplex, 'an open plain socket')
  t.equal(transport, (server as unknown as { _socket: Duplex })._socket)
  t.equal(directTransport(server, false), null, 'not for a socket with an extension')
  const connecting = new WebSocket('ws://127.0.0.1:1')
  connecting.on('error', () => {})
  t.equal(directTransport(connecting, true), null, 'not before the upgrade')
  // A Blob is read asynchronously: meanwhile ws's sender is busy and later frames wait in its queue.
  const received: string[] = []
  const both = new Promise<void>((resolve) => {
    client.on('message', (data: Buffer) => { if (received.push(data.toString()) === 2) resolve() })
  })
  server.send(new Blob(['blob']))
  t.equal(directTransport(server, true), null, 'not while the sender is busy')
  server.send('after')
  t.equal(directTransport(server, true), null, 'not while frames are queued')
  await both
  t.same(received, ['blob', 'after'])
  t.equal(directTransport(server, true), transport, 'again once ws has written its frames')
})

/** A Duplex that records each write it gets, as a batch of chunks; `hold` keeps write callbacks pending. */
function recordingDuplex (hold = false): { duplex: Duplex, batches: string[][], release: () => void } {
  const batches: string[][] = []
  const pending: Array<() => void> = []
  const done = (callback: () => void): void => { if (hold) pending.push(callback); else callback() }
  const duplex = new Duplex({
    read () {},
    write (chunk: Buffer, _encoding, callback) {
      batches.push([chunk.toString()])
      done(callback)
    },
    writev (chunks, callback) {
      batches.push(chunks.map(({ chunk }) => (chunk as Buffer).toString()))
      done(callback)
    }
  })
  return { duplex, batches, release: () => { for (const callback of pending.splice(0)) callback() } }
}

test('the writer turns the frames of one tick into one write per transport', async (t) => {
  const writer = new CoalescingWriter(1024)
  const a = recordingDuplex()
  const b = recordingDuplex()
  writer.write(a.duplex, Buffer.from('1'))
  writer.write(b.duplex, Buffer.from('x'))
  writer.write(a.duplex, Buffer.from('2'))
  writer.write(a.duplex, Buffer.from('3'))
  t.same(a.batches, [], 'nothing written during the tick')
  t.equal(a.duplex.writableCorked, 1, 'corked once, however many frames')
  await new Promise((resolve) => process.nextTick(resolve))
  t.same(a.batches, [['1', '2', '3']], 'one write with every frame, in order')
  t.same(b.batches, [['x']])
  t.equal(a.duplex.writableCorked, 0)
  writer.write(a.duplex, Buffer.from('4'))
  await new Promise((resolve) => process.nextTick(resolve))
  t.same(a.batches, [['1', '2', '3'], ['4']], 'the next tick starts over')
})

test('the writer hands bytes to the transport at once past flushBytes', async (t) => {
  const writer = new CoalescingWriter(10)
  const { duplex, batches } = recordingDuplex()
  writer.write(duplex, Buffer.from('aaaaaa'))
  t.same(batches, [], 'below the threshold: waits for the tick')
  writer.write(duplex, Buffer.from('bbbbbb'))
  t.same(batches, [['aaaaaa', 'bbbbbb']], 'at the threshold: written now')
  t.equal(duplex.writableCorked, 0)
  writer.write(duplex, Buffer.from('c'))
  await new Promise((resolve) => process.nextTick(resolve))
  t.same(batches, [['aaaaaa', 'bbbbbb'], ['c']], 'the rest of the tick is coalesced again')
})

test('the writer does not cork a transport that already holds flushBytes unsent', async (t) => {
  const writer = new CoalescingWriter(10)
  const { duplex, batches, release } = recordingDuplex(true)
  duplex.write(Buffer.from('x'.repeat(20)))
  t.equal(duplex.writableLength, 20, 'a slow reader: the first write has not completed')
  writer.write(duplex, Buffer.from('late'))
  t.equal(duplex.writableCorked, 0, 'written straight behind what waits')
  release()
  await new Promise((resolve) => setImmediate(resolve))
  release()
  t.same(batches.flat(), ['x'.repeat(20), 'late'])
})

test('an eager write goes out at once when it is the first to its transport in the tick', async (t) => {
  const writer = new CoalescingWriter(1024)
  const { duplex, batches } = recordingDuplex()
  writer.write(duplex, Buffer.from('now'), undefined, true)
  t.same(batches, [['now']], 'written before the tick ends')
  writer.write(duplex, Buffer.from('a'), undefined, true)
  writer.write(duplex, Buffer.from('b'))
  t.same(batches, [['now']], 'a second write in the same tick waits')
  await new Promise((resolve) => process.nextTick(resolve))
  t.same(batches, [['now'], ['a', 'b']], 'and goes with the rest of the tick')
  writer.write(duplex, Buffer.from('head'), Buffer.from('body'), true)
  t.same(batches.at(-1), ['head', 'body'], 'a frame in two parts leaves in one write')
})

test('sharedDeflateOf reads what a socket negotiated, only without context takeover', async (t) => {
  const plain = await socketPair(t)
  const takeover = await socketPair(t, true)
  const shared = await socketPair(t, { serverNoContextTakeover: true, threshold: 10 })
  t.equal(sharedDeflateOf(plain.server), undefined, 'no extension')
  t.equal(sharedDeflateOf(takeover.server), undefined, 'context takeover: ws compresses per socket')
  t.match(sharedDeflateOf(shared.server), { windowBits: 15, threshold: 10 })
})

test('a deflated message and a stored block inflate the way a peer inflates them (RFC 7692 §7.2.2)', (t) => {
  const tail = Buffer.from([0x00, 0x00, 0xff, 0xff])
  // A peer inflates a message as part of a stream that does not end there (ws: a sync flush).
  const finishFlush = zlibConstants.Z_SYNC_FLUSH
  const body = Buffer.from('{"text":"' + 'compress me '.repeat(200) + '"}')
  for (const windowBits of [9, 12, 15]) {
    const compressed = deflateMessage(body, { windowBits, threshold: 0, options: {} })
    t.ok(compressed.length < body.length / 10, `${windowBits} bits: ${compressed.length} bytes`)
    t.same(inflateRawSync(Buffer.concat([compressed, tail]), { windowBits, finishFlush }), body)
    const prefix = Buffer.from('["m",42,')
    const joined = Buffer.concat([storedBlock(prefix), compressed, tail])
    t.same(inflateRawSync(joined, { windowBits, finishFlush }), Buffer.concat([prefix, body]), 'prefix in a stored block, then the shared body')
  }
  t.same(inflateRawSync(Buffer.concat([storedBlock(Buffer.alloc(0)), tail]), { finishFlush }), Buffer.alloc(0))
  t.end()
})

test('frameHead sets RSV1 for a compressed payload', (t) => {
  t.equal(frameHead(10, false, undefined, true)[0], 0xc1)
  t.equal(frameHead(10, true, undefined, true)[0], 0xc2)
  t.equal(frameHead(10, false)[0], 0x81)
  t.end()
})
