import type { FastifyReply, FastifyRequest } from 'fastify'
import type { GlueAdapter } from '../adapters/adapter.js'
import { createSessionId } from '../handshake/identity.js'
import type { SessionCookie } from '../handshake/session-cookie.js'
import type { Revocations } from './revocations.js'

/** Login, logout and revocation: what changes which cookies are accepted and who a session is. */
export interface UserSessions {
  /**
   * Moves the request's session to a new id bound to `userId` (null: anonymous) and sets its cookie
   * on the reply; the old id is refused from now on, on every node. A request without a session
   * gets a fresh one. Returns the new id, which `request.sessionId` now holds too.
   */
  rotate (request: FastifyRequest, reply: FastifyReply, userId: string | null): string
  /** Revokes the request's session and deletes its cookie on the reply; `request.sessionId` becomes null. */
  logout (request: FastifyRequest, reply: FastifyReply): void
  /** Refuses a session id from now on and closes its sockets with 3000; returns the sockets closed here. */
  revoke (sessionId: string): number
  /** Refuses every cookie of a user issued until now and closes its sessions' sockets with 3000. */
  revokeUser (userId: string): number
}

/**
 * Every change goes through the adapter, so it holds on every node; this node also refuses the
 * old cookie at once, before the adapter has carried the change back to it.
 */
export function createUserSessions (adapter: GlueAdapter, revocations: Revocations, cookie: SessionCookie): UserSessions {
  return {
    rotate (request, reply, userId) {
      const oldId = request.sessionId
      // Minted where the old one lives (a sharded adapter: the same shard), so the move stays in one store.
      const sessionId = oldId === null ? createSessionId() : adapter.colocate(oldId, createSessionId)
      if (oldId !== null) {
        adapter.emit({ kind: 'rotate', sessionId: oldId, to: sessionId, userId })
        revocations.revokeSession(oldId, Date.now())
      }
      request.sessionId = sessionId
      request.sessionUserId = userId
      cookie.issue(request, reply, { sessionId, userId, issuedAt: Date.now() })
      return sessionId
    },
    logout (request, reply) {
      if (request.sessionId !== null) this.revoke(request.sessionId)
      request.sessionId = null
      request.sessionUserId = null
      cookie.clear(request, reply)
    },
    revoke (sessionId) {
      const closed = adapter.emit({ kind: 'revoke', sessionId })
      revocations.revokeSession(sessionId, Date.now())
      return closed
    },
    revokeUser (userId) {
      const before = Date.now()
      const closed = adapter.emit({ kind: 'revokeUser', userId, before })
      revocations.revokeUser(userId, before)
      return closed
    }
  }
}
