/** The bot's name: shown as the author of its answers, and refused as a login name. */
export const BOT_NAME = 'helpbot'

/** What the bot quotes back of a question it does not understand, at most. */
const QUOTE_LENGTH = 80

/**
 * The bot's answer to `question` from `user`: a few keywords, nothing clever. It runs on the
 * server inside `answerRequest`, so the answer is both the request's reply and a room message.
 */
export function answerQuestion (question: string, user: string, rooms: readonly string[], now = new Date()): string {
  const words = question.toLowerCase()
  if (/\btime\b/.test(words)) return `It is ${now.toISOString().slice(11, 19)} UTC.`
  if (/\brooms?\b/.test(words)) return `The rooms are ${rooms.map((room) => '#' + room).join(', ')}.`
  if (/\b(hello|hi|hey|help)\b/.test(words)) return `Hello ${user}! Ask me for the time or the rooms.`
  // By code points, so an emoji is never cut in half.
  const chars = [...question]
  const quote = chars.length > QUOTE_LENGTH ? chars.slice(0, QUOTE_LENGTH).join('') + '…' : question
  return `I only know the time and the rooms, not "${quote}".`
}
