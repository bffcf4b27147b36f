// The text messages every target exchanges with the bench clients. The first character is the kind:
//   h|<sessionId>            hello, sent by the server once per socket when it is registered
//   b|<hrtimeNs>|<padding>   broadcast, stamped with the server's monotonic clock
//   t|<hrtimeNs>|<padding>   targeted send, stamped with the server's monotonic clock
//   e|<hrtimeNs>|<padding>   echo request from a client; the server returns it unchanged

export const COOKIE_SECRET = 'bench-secret-bench-secret-bench-secret-0123456789'

export function padding (size) {
  return 'x'.repeat(Math.max(0, size))
}

// Text that compresses about as well as a typical JSON event (3-4x with permessage-deflate), built
// from a fixed seed so every target sends the same bytes: `kind` 'json' in the deflate scenario.
// Each seed gives other records, so messages do not repeat one another (as real events do not).
export function payload (size, kind = 'pad', seed = 42) {
  if (kind !== 'json') return padding(size)
  const next = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed }
  const words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet']
  const records = []
  let length = 2
  while (length < size) {
    const record = JSON.stringify({ id: next() % 100000, user: `user-${next() % 5000}`, score: (next() % 10000) / 100, tag: words[next() % words.length], ok: next() % 2 === 0 })
    records.push(record)
    length += record.length + 1
  }
  return `[${records.join(',')}]`.slice(0, Math.max(0, size))
}
