import { createHash } from 'node:crypto'
import type { Session } from '../sessions/live-session.js'
import type { TopicMember } from '../wire/protocol.js'

/**
 * The key of a session's member in a topic: `u:<user id>` for a session bound to a user (all its
 * tabs, devices and sessions are one member), else `a:<opaque id>`. The opaque id is a hash of the
 * session id: stable on every node, and never the session id itself, which is the cookie's secret.
 */
export function memberKeyOf (session: Session): string {
  if (session.userId !== null) return `u:${session.userId}`
  return `a:${createHash('sha256').update(session.id).digest('base64url').slice(0, 22)}`
}

/** The member a key names, as clients see it. */
export function memberOf (key: string): TopicMember {
  return { id: key.slice(2), user: key.startsWith('u:') }
}
