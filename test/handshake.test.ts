import { test } from 'tap'
import { Signer } from '@fastify/cookie'
import { cookiePair, openSocket, SECRET, startApp } from './helpers.js'

test('mints a session and a signed HttpOnly cookie on the 101 of a first handshake', async (t) => {
  const { app, wsUrl } = await startApp()
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  t.teardown(() => client.socket.terminate())

  t.equal(client.setCookie.length, 1)
  const line = client.setCookie[0] as string
  t.match(line, /^sid=[^;]+; Path=\/; HttpOnly; SameSite=Lax$/)
  const signed = decodeURIComponent(cookiePair(line).slice('sid='.length))
  const unsigned = new Signer(SECRET).unsign(signed)
  t.ok(unsigned.valid, 'cookie verifies with the secret')
  t.match(unsigned.value, /^[A-Za-z0-9_-]{24}$/, '144-bit base64url id')
  t.ok(app.sessions.has(unsigned.value as string))
})
