import type { SessionStats } from '../stats.js'

/** What a cookie claims, as far as revocation cares. */
export interface RevocationCheck {
  readonly sessionId: string
  readonly userId: string | null
  readonly issuedAt: number
}

/**
 * The session ids and users whose cookies this node refuses: revoked sessions (logout, or the old
 * id of a rotation) and users logged out everywhere (every cookie of theirs issued until then).
 * An entry is needed only while a cookie it refuses could still be valid, so each is forgotten one
 * cookie lifetime after it was made. Whatever the app revokes, each map holds at most `max` entries:
 * beyond that the oldest is forgotten early, counted in `revocationEvictions`.
 */
export class Revocations {
  /** Session id → when it was revoked (ms), oldest first. */
  readonly #sessions = new Map<string, number>()
  /** User id → cookies issued at or before this time (ms) are refused, oldest first. */
  readonly #users = new Map<string, number>()
  readonly #lifetime: number
  readonly #max: number
  readonly #stats: SessionStats
  readonly #onEvict: () => void

  /** `onEvict` hears of each early eviction (the plugin logs the first). */
  constructor (lifetime: number, max: number, stats: SessionStats, onEvict: () => void) {
    this.#lifetime = lifetime
    this.#max = max
    this.#stats = stats
    this.#onEvict = onEvict
  }

  /** From now on, no cookie of this session id is accepted. */
  revokeSession (sessionId: string, at: number): void {
    this.#add(this.#sessions, sessionId, Math.max(at, this.#sessions.get(sessionId) ?? 0))
  }

  /** From now on, no cookie of this user issued at or before `before` is accepted. */
  revokeUser (userId: string, before: number): void {
    this.#add(this.#users, userId, Math.max(before, this.#users.get(userId) ?? 0))
  }

  /** Whether a verified cookie must be refused. */
  refuses (claims: RevocationCheck): boolean {
    if (this.#sessions.has(claims.sessionId)) return true
    if (claims.userId === null) return false
    const before = this.#users.get(claims.userId)
    return before !== undefined && claims.issuedAt <= before
  }

  /** Forgets the entries that no valid cookie can need any more. */
  sweep (now: number): void {
    const cutoff = now - this.#lifetime
    for (const map of [this.#sessions, this.#users]) {
      // Oldest first: stop at the first entry still needed.
      for (const [key, at] of map) {
        if (at > cutoff) break
        map.delete(key)
      }
    }
    this.#count()
  }

  get size (): number {
    return this.#sessions.size + this.#users.size
  }

  #add (map: Map<string, number>, key: string, at: number): void {
    // Re-inserted, so the map stays ordered by time.
    map.delete(key)
    map.set(key, at)
    while (map.size > this.#max) {
      const oldest = map.keys().next().value as string
      map.delete(oldest)
      this.#stats.revocationEvictions++
      this.#onEvict()
    }
    this.#count()
  }

  #count (): void {
    this.#stats.revocations = this.size
  }
}
