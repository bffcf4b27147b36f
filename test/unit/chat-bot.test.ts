import { test } from 'tap'
import { answerQuestion, BOT_NAME } from '../../example/chat/bot.js'

const ROOMS = ['general', 'random', 'help']
const NOW = new Date('2026-11-30T01:02:03.456Z')

test('answers the time, the rooms and a greeting', async (t) => {
  t.equal(answerQuestion('What TIME is it?', 'ada', ROOMS, NOW), 'It is 01:02:03 UTC.')
  t.equal(answerQuestion('which rooms exist', 'ada', ROOMS, NOW), 'The rooms are #general, #random, #help.')
  t.equal(answerQuestion('hi there', 'ada', ROOMS, NOW), 'Hello ada! Ask me for the time or the rooms.')
  t.equal(BOT_NAME, 'helpbot')
})

test('quotes an unknown question back, cut at 80 characters without splitting a character', async (t) => {
  t.equal(answerQuestion('why?', 'ada', ROOMS, NOW), 'I only know the time and the rooms, not "why?".')
  const long = '😀'.repeat(100)
  const answer = answerQuestion(long, 'ada', ROOMS, NOW)
  t.equal(answer, `I only know the time and the rooms, not "${'😀'.repeat(80)}…".`)
  t.notOk(/[\ud800-\udbff](?![\udc00-\udfff])/.test(answer), 'no lone surrogate')
})
