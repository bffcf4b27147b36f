import { test } from 'tap'
import { openSocket, refusedHandshake, startApp } from './helpers/index.js'

test('allows a handshake whose Origin names the same host and port as Host', async (t) => {
  const { app, wsUrl, port } = await startApp()
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl, { origin: `http://127.0.0.1:${port}` })
  t.teardown(() => client.socket.terminate())
  t.equal(app.sessions.size, 1)
})

test('compares host and port case-insensitively and ignores the default port', async (t) => {
  const { app, wsUrl } = await startApp()
  t.teardown(() => app.close())
  const cases: Array<[string, string]> = [
    ['http://Example.COM', 'example.com'],
    ['http://example.com', 'EXAMPLE.com:80'],
    ['https://example.com', 'example.com:443'],
    ['https://example.com:8443', 'example.com:8443']
  ]
  for (const [origin, host] of cases) {
    const client = await openSocket(wsUrl, { origin, headers: { host } })
    t.pass(`${origin} with Host ${host} is allowed`)
    client.socket.terminate()
  }
})

test('refuses a cross-origin handshake with 403 before any 101', async (t) => {
  const { app, wsUrl, logs } = await startApp()
  t.teardown(() => app.close())
  const cases: Array<[string, string | undefined]> = [
    ['https://evil.example', undefined],
    ['http://127.0.0.1:1', undefined],
    ['http://example.com:8080', 'example.com'],
    ['https://example.com', 'example.com:80'],
    ['not a url', undefined]
  ]
  for (const [origin, host] of cases) {
    const refused = await refusedHandshake(wsUrl, { origin, headers: host === undefined ? {} : { host } })
    t.equal(refused.status, 403, `${origin} is refused`)
    t.match(JSON.parse(refused.body), { code: 'FST_WSGLUE_FORBIDDEN_ORIGIN' })
  }
  t.equal(app.sessions.size, 0, 'no session was created')
  t.match(await logs.waitFor('refused websocket origin'), { level: 40, origin: 'https://evil.example' })
})

test('refuses Origin: null', async (t) => {
  const { app, wsUrl } = await startApp()
  t.teardown(() => app.close())
  t.equal((await refusedHandshake(wsUrl, { origin: 'null' })).status, 403)
})

test('allows a handshake without an Origin header (not a browser)', async (t) => {
  const { app, wsUrl } = await startApp()
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl)
  t.teardown(() => client.socket.terminate())
  t.equal(client.response.statusCode, 101)
})

test('allowedOrigins replaces the same-host rule', async (t) => {
  const { app, wsUrl, port } = await startApp({ glue: { allowedOrigins: ['https://app.example', 'http://localhost:3000'] } })
  t.teardown(() => app.close())
  const listed = await openSocket(wsUrl, { origin: 'https://APP.example' })
  const other = await openSocket(wsUrl, { origin: 'http://localhost:3000' })
  t.teardown(() => { listed.socket.terminate(); other.socket.terminate() })
  t.equal((await refusedHandshake(wsUrl, { origin: 'https://app.example:444' })).status, 403)
  t.equal((await refusedHandshake(wsUrl, { origin: `http://127.0.0.1:${port}` })).status, 403, 'same host is not listed')
  t.equal((await refusedHandshake(wsUrl, { origin: 'null' })).status, 403)
})

test('allowedOrigins as a function decides with the origin and the request', async (t) => {
  const seen: Array<[string, string | undefined]> = []
  const { app, wsUrl } = await startApp({
    glue: {
      allowedOrigins (origin, request) {
        seen.push([origin, request.headers['x-tenant'] as string | undefined])
        return origin.endsWith('.trusted.example')
      }
    }
  })
  t.teardown(() => app.close())
  const client = await openSocket(wsUrl, { origin: 'https://a.trusted.example', headers: { 'x-tenant': 'a' } })
  t.teardown(() => client.socket.terminate())
  t.equal((await refusedHandshake(wsUrl, { origin: 'https://untrusted.example' })).status, 403)
  t.same(seen, [['https://a.trusted.example', 'a'], ['https://untrusted.example', undefined]])
})

test('a throwing allowedOrigins function refuses the handshake and logs the error', async (t) => {
  const { app, wsUrl, logs } = await startApp({ glue: { allowedOrigins () { throw new Error('policy store down') } } })
  t.teardown(() => app.close())
  t.equal((await refusedHandshake(wsUrl, { origin: 'https://app.example' })).status, 403)
  const line = await logs.waitFor('allowedOrigins check failed')
  t.match(line, { level: 50, err: { message: 'policy store down' } })
})
