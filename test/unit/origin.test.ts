import { test } from 'tap'
import type { FastifyRequest } from 'fastify'
import { isOriginAllowed } from '../../plugin/handshake/origin.js'

// The request only reaches a user function; a stand-in object is enough here.
const request = { headers: {} } as unknown as FastifyRequest

test('without an Origin header (not a browser) every policy allows', (t) => {
  t.equal(isOriginAllowed(undefined, 'example.com', null, request), true)
  t.equal(isOriginAllowed(undefined, undefined, null, request), true)
  t.equal(isOriginAllowed(undefined, 'example.com', new Set(), request), true)
  t.equal(isOriginAllowed(undefined, 'example.com', () => false, request), true, 'not even asked')
  t.end()
})

test('the same-host rule compares host and port, case-insensitively, ignoring default ports', (t) => {
  const allowed: Array<[string, string]> = [
    ['http://example.com', 'example.com'],
    ['http://Example.COM', 'example.com'],
    ['http://example.com', 'EXAMPLE.com:80'],
    ['https://example.com', 'example.com:443'],
    ['https://example.com:443', 'example.com'],
    ['https://example.com:8443', 'example.com:8443'],
    ['http://127.0.0.1:3000', '127.0.0.1:3000'],
    ['http://[::1]:3000', '[::1]:3000']
  ]
  for (const [origin, host] of allowed) t.equal(isOriginAllowed(origin, host, null, request), true, `${origin} with Host ${host}`)
  const refused: Array<[string, string | undefined]> = [
    ['http://evil.example', 'example.com'],
    ['http://example.com:8080', 'example.com'],
    ['https://example.com', 'example.com:80'],
    ['http://example.com', 'example.com:443'],
    ['http://example.com', undefined],
    ['null', 'example.com'],
    ['not a url', 'example.com'],
    ['ftp://example.com', 'example.com'],
    ['ws://example.com', 'example.com'],
    ['chrome-extension://example.com', 'example.com'],
    ['http://sub.example.com', 'example.com']
  ]
  for (const [origin, host] of refused) t.equal(isOriginAllowed(origin, host, null, request), false, `${origin} with Host ${String(host)}`)
  t.end()
})

test('a list of origins replaces the same-host rule; entries are lower-case', (t) => {
  const listed = new Set(['https://app.example', 'http://localhost:3000'])
  t.equal(isOriginAllowed('https://APP.example', 'other.example', listed, request), true, 'compared lower-cased')
  t.equal(isOriginAllowed('http://localhost:3000', undefined, listed, request), true)
  t.equal(isOriginAllowed('https://app.example:444', 'app.example', listed, request), false)
  t.equal(isOriginAllowed('http://example.com', 'example.com', listed, request), false, 'same host, not listed')
  t.equal(isOriginAllowed('null', 'example.com', new Set(['null']), request), false, 'an opaque origin never matches')
  t.end()
})

test('a function decides with the origin and the request, and must return true', (t) => {
  const seen: Array<[string, FastifyRequest]> = []
  const check = (origin: string, req: FastifyRequest): boolean => {
    seen.push([origin, req])
    return origin.endsWith('.trusted.example')
  }
  t.equal(isOriginAllowed('https://a.trusted.example', 'x', check, request), true)
  t.equal(isOriginAllowed('https://evil.example', 'x', check, request), false)
  t.equal(isOriginAllowed('null', 'x', check, request), false, 'the function sees null origins too')
  t.same(seen.map(([origin]) => origin), ['https://a.trusted.example', 'https://evil.example', 'null'])
  t.equal(seen[0]?.[1], request)
  t.equal(isOriginAllowed('https://a.example', 'x', (() => 'yes') as unknown as () => boolean, request), false, 'only true allows')
  t.throws(() => isOriginAllowed('https://a.example', 'x', () => { throw new Error('policy down') }, request), /policy down/, 'a throw reaches the caller')
  t.end()
})
