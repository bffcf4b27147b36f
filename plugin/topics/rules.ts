import type { FastifyBaseLogger } from 'fastify'
import { DEFAULT_HISTORY_LIMIT, DEFAULT_HISTORY_MAX_AGE, MAX_HISTORY_LIMIT } from '../constants.js'
import { invalid, isPlainObject, readInteger } from '../config/validate.js'
import { isReservedTopic } from '../users/channel.js'

/** The history limits of one topic, validated. */
export interface TopicHistoryLimits {
  readonly limit: number
  readonly maxAge: number
}

/** `topicHistory` as resolved: one set of limits for every topic, or the app's function. */
export type ResolvedTopicHistory = TopicHistoryLimits | ((topic: string) => unknown) | undefined

/** `topicPresence` as resolved. */
export type ResolvedTopicPresence = boolean | ((topic: string) => unknown)

/**
 * Validates a history limits object (`topicHistory`, or what its function returned for a topic).
 * @throws FST_WSGLUE_INVALID_OPTION naming `option`.
 */
export function readHistoryLimits (option: string, value: unknown): TopicHistoryLimits {
  if (!isPlainObject(value)) throw invalid(option, 'an object with `limit` and `maxAge`, or a function', value)
  return Object.freeze({
    limit: readInteger(`${option}.limit`, value.limit, DEFAULT_HISTORY_LIMIT, 1, MAX_HISTORY_LIMIT),
    maxAge: readInteger(`${option}.maxAge`, value.maxAge, DEFAULT_HISTORY_MAX_AGE, 1)
  })
}

/** Reads the `topicHistory` option at register. @throws FST_WSGLUE_INVALID_OPTION */
export function resolveTopicHistory (value: unknown): ResolvedTopicHistory {
  if (value === undefined) return undefined
  if (typeof value === 'function') return value as (topic: string) => unknown
  return readHistoryLimits('topicHistory', value)
}

/** Reads the `topicPresence` option at register. @throws FST_WSGLUE_INVALID_OPTION */
export function resolveTopicPresence (value: unknown): ResolvedTopicPresence {
  if (value === undefined) return false
  if (typeof value === 'boolean' || typeof value === 'function') return value as ResolvedTopicPresence
  throw invalid('topicPresence', 'a boolean or a function', value)
}

/** Which topics keep history and which show presence, from the app's options; users' channels never do. */
export interface TopicRules {
  /** The history limits of a topic, or undefined when it keeps none. */
  historyOf (topic: string): TopicHistoryLimits | undefined
  /** Whether a topic shows its members. */
  presenceOf (topic: string): boolean
  /** Whether any topic may keep history (false: publishes skip every history check). */
  readonly anyHistory: boolean
  readonly anyPresence: boolean
}

/**
 * Creates the rules. The app's functions run per call: a throw or an invalid result is logged (once
 * per kind of failure, so a broken function cannot flood the log) and means "no history" or "no presence".
 */
export function createTopicRules (history: ResolvedTopicHistory, presence: ResolvedTopicPresence, log: FastifyBaseLogger): TopicRules {
  const warned = new Set<string>()
  const fail = (kind: string, err: unknown): void => {
    if (warned.has(kind)) return
    warned.add(kind)
    log.error({ err }, `${kind} failed; the topic is treated as having none`)
  }
  return {
    anyHistory: history !== undefined,
    anyPresence: presence !== false,
    historyOf (topic) {
      if (history === undefined || isReservedTopic(topic)) return undefined
      if (typeof history !== 'function') return history
      try {
        const limits = history(topic)
        if (limits === undefined || limits === null || limits === false) return undefined
        return readHistoryLimits('topicHistory(topic)', limits)
      } catch (err) {
        fail('topicHistory', err)
        return undefined
      }
    },
    presenceOf (topic) {
      if (presence === false || isReservedTopic(topic)) return false
      if (presence === true) return true
      try {
        return presence(topic) === true
      } catch (err) {
        fail('topicPresence', err)
        return false
      }
    }
  }
}
