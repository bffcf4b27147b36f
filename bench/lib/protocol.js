// The text messages every target exchanges with the bench clients. The first character is the kind:
//   h|<sessionId>            hello, sent by the server once per socket when it is registered
//   b|<seq>|<padding>        broadcast number <seq>
//   t|<hrtimeNs>|<padding>   targeted send, stamped with the server's monotonic clock
//   e|<hrtimeNs>|<padding>   echo request from a client; the server returns it unchanged

export const COOKIE_SECRET = 'bench-secret-bench-secret-bench-secret-0123456789'

export function padding (size) {
  return 'x'.repeat(Math.max(0, size))
}
