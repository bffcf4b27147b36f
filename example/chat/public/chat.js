// The chat page: log in by name, rooms as topics, posts and questions to the bot as requests.
// User text only ever reaches the page through textContent, never as HTML.
import { GlueClient } from '/_glue/glue-client.js'

/** Messages the page keeps per room: older ones leave the page. */
const MAX_SHOWN = 200
/** How long a post or a question may wait for the server's answer. */
const REQUEST_TIMEOUT = 5000
const HINTS = {
  general: 'Anything goes.',
  random: 'Off-topic, links, jokes.',
  help: 'Ask the bot: it answers your request and posts the answer here.'
}

const $ = (id) => document.getElementById(id)

/** From GET /rooms: `{ rooms, topics, bot: { name, room }, maxText }`. */
const config = await fetch('/rooms').then((response) => response.json())
/** The logged-in user, or null. */
let me = null
/** One client per login: a logout revokes the session, and the next login starts a new one. */
let client = null
let current = null
/** room → { topic, joined, messages, unread } */
const rooms = new Map()

function element (tag, className, text) {
  const node = document.createElement(tag)
  if (className) node.className = className
  if (text !== undefined) node.textContent = text
  return node
}

function showError (text) {
  $('error').textContent = text
}

function renderState () {
  const state = client === null ? 'closed' : client.state
  $('state').dataset.state = state
  $('state').textContent = state === 'open' ? 'online' : state === 'closed' ? 'offline' : state
}

function renderRooms () {
  const list = $('rooms')
  list.replaceChildren()
  for (const [name, room] of rooms) {
    const button = element('button', '', '#' + name)
    button.type = 'button'
    button.dataset.room = name
    button.setAttribute('aria-current', String(name === current))
    button.dataset.joined = String(room.joined)
    if (room.unread > 0) button.append(element('span', 'unread', String(room.unread)))
    button.onclick = () => openRoom(name)
    const item = element('li')
    item.append(button)
    list.append(item)
  }
}

function messageItem (message) {
  if (message.notice !== undefined) return element('li', 'notice', message.notice)
  const item = element('li', message.bot ? 'bot' : message.author === me ? 'mine' : '')
  const at = new Date(message.at)
  const time = element('time', '', at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }))
  time.dateTime = message.at
  item.append(time, element('span', 'author', message.author), element('span', 'text', message.text))
  return item
}

function renderMessages () {
  const list = $('messages')
  list.replaceChildren(...rooms.get(current).messages.map(messageItem))
  list.scrollTop = list.scrollHeight
}

/** Keeps a message (or a notice) for its room, and shows it if the room is open. */
function receive (name, message) {
  const room = rooms.get(name)
  room.messages.push(message)
  const dropped = room.messages.length > MAX_SHOWN
  if (dropped) room.messages.shift()
  if (name === current) {
    const list = $('messages')
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40
    if (dropped) list.firstElementChild.remove()
    list.append(messageItem(message))
    if (atBottom || message.author === me) list.scrollTop = list.scrollHeight
  } else if (message.notice === undefined) {
    room.unread += 1
    renderRooms()
  }
}

// What the server publishes is trusted for shape only as far as it is checked here.
function isChatMessage (data) {
  return data !== null && typeof data === 'object' && typeof data.author === 'string' &&
    typeof data.text === 'string' && typeof data.at === 'string'
}

/**
 * Joins a room: subscribes the session to its topic (the server allows logged-in sessions and the
 * listed rooms only). The subscription belongs to the session and the client restores it after a
 * reconnect. Topic history (the room's last messages, before live ones) slots in here.
 */
async function joinRoom (name) {
  const room = rooms.get(name)
  await client.subscribe(room.topic)
  room.joined = true
  renderRooms()
}

async function openRoom (name) {
  current = name
  const room = rooms.get(name)
  room.unread = 0
  $('room-title').textContent = '#' + name
  $('room-hint').textContent = HINTS[name] ?? ''
  $('ask').hidden = name !== config.bot.room
  $('ask').textContent = 'Ask ' + config.bot.name
  showError('')
  renderRooms()
  renderMessages()
  $('text').focus()
  if (room.joined) return
  try {
    await joinRoom(name)
  } catch (err) {
    showError(`Could not join #${name}: ${err.code}: ${err.message}`)
  }
}

/** Posts the composer's text to the open room (`op: 'post'`), or asks the bot (`op: 'ask'`). */
async function submit (op) {
  const text = $('text').value
  const buttons = [$('post'), $('ask')]
  for (const button of buttons) button.disabled = true
  try {
    // The server checks everything again: the schema (room, length), membership, the rate; the
    // author is the session's user, whatever a page would send.
    await client.request({ op, room: current, text }, { timeout: REQUEST_TIMEOUT })
    $('text').value = ''
    showError('')
  } catch (err) {
    showError(`Not sent (${err.code}): ${err.message}`)
  } finally {
    for (const button of buttons) button.disabled = false
    $('text').focus()
  }
}

function connect () {
  client = new GlueClient()
  client.on('statechange', renderState)
  for (const [name, room] of rooms) {
    client.onTopic(room.topic, ({ data }) => { if (isChatMessage(data)) receive(name, data) })
  }
  client.on('gap', ({ missed }) => {
    const what = missed === null ? 'Some messages' : `${missed} message${missed === 1 ? '' : 's'}`
    for (const [name, room] of rooms) if (room.joined) receive(name, { notice: `${what} could not be delivered while you were offline.` })
  })
  // A logout (here or in another tab of this browser) revokes the session: the socket closes with 3000.
  client.on('revoked', () => signedOut('You were logged out.'))
  client.on('error', (err) => showError(`${err.code}: ${err.message}`))
  renderState()
}

/** Shows the chat for `user`; `joined` are the rooms the session is already in (after a reload). */
function startChat (user, joined) {
  me = user
  rooms.clear()
  config.rooms.forEach((name, index) => {
    rooms.set(name, { topic: config.topics[index], joined: false, messages: [], unread: 0 })
  })
  $('me').textContent = user
  $('you').textContent = user
  $('text').maxLength = config.maxText
  $('login').hidden = true
  $('chat').hidden = false
  $('whoami').hidden = false
  $('logout').hidden = false
  connect()
  openRoom(config.rooms[0])
  // Subscribing again is harmless, and makes this client restore them after a reconnect.
  for (const name of joined) {
    if (name === current || !rooms.has(name)) continue
    joinRoom(name).catch((err) => showError(`Could not join #${name}: ${err.code}: ${err.message}`))
  }
}

function signedOut (why) {
  client?.close()
  client = null
  me = null
  current = null
  renderState()
  $('chat').hidden = true
  $('whoami').hidden = true
  $('logout').hidden = true
  $('login').hidden = false
  $('login-error').textContent = why
  $('name').focus()
}

async function postJson (path, body) {
  const response = await fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body ?? {})
  })
  return { ok: response.ok, body: await response.json() }
}

$('login').onsubmit = async (event) => {
  event.preventDefault()
  const { ok, body } = await postJson('/login', { name: $('name').value })
  if (!ok) {
    $('login-error').textContent = body.error
    return
  }
  $('login-error').textContent = ''
  startChat(body.user, [])
}

$('logout').onclick = async () => {
  await postJson('/logout')
  signedOut('')
}

$('composer').onsubmit = (event) => {
  event.preventDefault()
  submit('post')
}
$('ask').onclick = () => submit('ask')

const { user, rooms: joined } = await fetch('/me').then((response) => response.json())
if (user === null) signedOut('')
else startChat(user, joined)
