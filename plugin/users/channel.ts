/**
 * A user's channel: the internal topic every session bound to the user is subscribed to, so a push
 * to the user travels, is numbered and is kept for resume exactly as a topic message does. The
 * name starts with U+0000, which application topics may not (see `isTopic`), so no client or app
 * can subscribe to someone's channel, and its messages reach clients as plain `m` envelopes.
 */
const CHANNEL_PREFIX = '\u0000u:'

/** A user id is at most this many UTF-8 bytes (it travels in the signed cookie). */
export const USER_ID_MAX_BYTES = 128

// String.prototype.isWellFormed is ES2024 (Node 20+); the ES2023 lib does not declare it.
type MaybeWellFormed = string & { isWellFormed (): boolean }

/** Whether a value is a valid user id: a non-empty, well-formed string of at most 128 UTF-8 bytes. */
export function isUserId (value: unknown): value is string {
  return typeof value === 'string' && value !== '' && Buffer.byteLength(value) <= USER_ID_MAX_BYTES &&
    (value as MaybeWellFormed).isWellFormed()
}

/** The channel of a user. */
export function userChannel (userId: string): string {
  return CHANNEL_PREFIX + userId
}

/** Whether a topic name is a user's channel rather than an application topic. */
export function isUserChannel (topic: string): boolean {
  return topic.startsWith(CHANNEL_PREFIX)
}

/** The user of a channel name, or undefined for an application topic. */
export function userOfChannel (topic: string): string | undefined {
  return isUserChannel(topic) ? topic.slice(CHANNEL_PREFIX.length) : undefined
}

/** Whether a topic name is reserved for the plugin (it starts with U+0000). */
export function isReservedTopic (topic: string): boolean {
  return topic.charCodeAt(0) === 0
}

/** The topic a message published to `topic` shows its clients: none for a user's channel (an `m` envelope). */
export function shownTopic (topic: string): string | undefined {
  return isUserChannel(topic) ? undefined : topic
}
