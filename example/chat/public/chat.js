// The chat page: log in by name, rooms as topics (with their history and who is in them), posts and
// questions to the bot as requests. User text only ever reaches the page through textContent, never as HTML.
import { GlueClient } from '/_glue/glue-client.js'

/** Messages the page keeps per room: older ones leave the page. */
const MAX_SHOWN = 200
/** Members the People pane names; the rest are counted ("and 12 more"). */
const MAX_LISTED = 100
/** How long a post or a question may wait for the server's answer. */
const REQUEST_TIMEOUT = 5000
const HINTS = {
  general: 'Anything goes.',
  random: 'Off-topic, links, jokes.',
  help: 'Ask the bot: it answers your request and posts the answer here.'
}

const $ = (id) => document.getElementById(id)

/** From GET /rooms: `{ rooms, topics, bot: { name, room }, maxText, history: { limit, maxAge } }`. */
const config = await fetch('/rooms').then((response) => response.json())
/** The logged-in user, or null. */
let me = null
/** One client per login: a logout revokes the session, and the next login starts a new one. */
let client = null
let current = null
/**
 * room → { topic, joined, messages, inHistory, unread, members, memberCount }: `inHistory` while the
 * room's history is arriving; `members` maps a member's id to `{ id, user }` (a user id here: only
 * logged-in sessions join); `memberCount` counts them all, listed or not.
 */
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
  // A line of the page's own: `kind` 'gap' (history that is gone) or 'divider' (history begins).
  if (message.notice !== undefined) return element('li', message.kind, message.notice)
  const item = element('li', message.bot ? 'bot' : message.author === me ? 'mine' : '')
  // From the room's history: said before this page joined (or before a reload).
  if (message.history) item.dataset.history = 'true'
  const at = new Date(message.at)
  const time = element('time', '', at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }))
  time.dateTime = message.at
  item.append(time, element('span', 'author', message.author), element('span', 'text', message.text))
  return item
}

/** The People pane: the open room's members, "you" first and marked, then by name. */
function renderMembers () {
  const room = rooms.get(current)
  const list = $('members')
  $('people-title').textContent = room?.joined ? `People in #${current}` : 'People'
  if (room === undefined || !room.joined) {
    list.replaceChildren()
    list.hidden = true
    $('members-more').textContent = ''
    return
  }
  const members = [...room.members.values()]
    .sort((a, b) => Number(b.id === me && b.user) - Number(a.id === me && a.user) || a.id.localeCompare(b.id))
    .slice(0, MAX_LISTED)
  list.replaceChildren(...members.map((member) => {
    const you = member.user && member.id === me
    const item = element('li', you ? 'you' : '', member.user ? member.id : 'a guest')
    item.dataset.member = member.id
    if (you) item.append(element('span', 'tag', 'you'))
    return item
  }))
  list.hidden = false
  const more = room.memberCount - members.length
  $('members-more').textContent = more > 0 ? `and ${more} more` : ''
}

/** Asks the server who is in a room (it must be joined), replacing what the page knew. */
async function loadMembers (name) {
  const room = rooms.get(name)
  const asking = client
  if (asking === null) return
  try {
    const { members, count } = await asking.members(room.topic)
    // A logout or another login since: this answer belongs to a client that is gone.
    if (client !== asking) return
    room.members = new Map(members.map((member) => [member.id, member]))
    room.memberCount = count
    if (name === current) renderMembers()
  } catch (err) {
    if (client === asking) showError(`Could not list the people in #${name}: ${err.code}: ${err.message}`)
  }
}

/** A presence batch: a member came to (`joined` true) or left a room. */
function memberChanged (name, member, joined) {
  const room = rooms.get(name)
  if (!room.joined) return
  const known = room.members.has(member.id)
  if (joined && !known) {
    room.members.set(member.id, member)
    room.memberCount += 1
  } else if (!joined && known) {
    room.members.delete(member.id)
    room.memberCount = Math.max(room.members.size, room.memberCount - 1)
  }
  if (name === current) renderMembers()
}

function renderMessages () {
  const list = $('messages')
  list.replaceChildren(...rooms.get(current).messages.map(messageItem))
  list.scrollTop = list.scrollHeight
}

/**
 * Keeps a message for its room, and shows it if the room is open. A room's history comes before its
 * live messages, each once (the client drops a position it delivered already), so appending keeps
 * the order; a divider line says where the history begins.
 */
function receive (name, message) {
  const room = rooms.get(name)
  if (message.history && !room.inHistory) {
    append(name, { notice: room.messages.length === 0 ? 'Earlier messages' : 'While you were away', kind: 'divider' })
  }
  room.inHistory = message.history
  append(name, message)
}

/** Keeps a message (or a line of the page's own) for its room, and shows it if the room is open. */
function append (name, message) {
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
  } else if (message.notice === undefined && !message.history) {
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
 * listed rooms only), asking for the room's history: its last messages come before live ones. The
 * subscription belongs to the session and the client restores it after a reconnect, asking then
 * only for what came after the last message it delivered. Then lists who is in the room.
 */
async function joinRoom (name) {
  const room = rooms.get(name)
  await client.subscribe(room.topic, { history: true })
  room.joined = true
  renderRooms()
  if (name === current) renderMembers()
  await loadMembers(name)
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
  renderMembers()
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
  const roomOf = new Map()
  for (const [name, room] of rooms) {
    roomOf.set(room.topic, name)
    client.onTopic(room.topic, ({ data, history }) => { if (isChatMessage(data)) receive(name, { ...data, history }) })
  }
  // Every room keeps history, and the client resubscribes after a reconnect asking for what came
  // after its last message: what cannot be filled comes as a gap of that room. A gap without a
  // topic (the session's own messages) says nothing more for the rooms, so it is not shown.
  client.on('gap', ({ missed, topic }) => {
    const name = roomOf.get(topic)
    if (name === undefined) return
    // A count: trimmed or aged out. Unknown: the server's history is another one (it restarted).
    const notice = missed === null
      ? `Some messages of #${name} could not be shown: the server no longer has them.`
      : `${missed} message${missed === 1 ? '' : 's'} of #${name} could not be shown: a room keeps its last ${config.history.limit} messages of the last ${Math.round(config.history.maxAge / 60_000)} minutes.`
    append(name, { notice, kind: 'gap' })
  })
  client.on('join', ({ topic, member }) => { if (roomOf.has(topic)) memberChanged(roomOf.get(topic), member, true) })
  client.on('leave', ({ topic, member }) => { if (roomOf.has(topic)) memberChanged(roomOf.get(topic), member, false) })
  // More changed at once than one batch lists: ask for the list again.
  client.on('membersstale', ({ topic }) => { if (roomOf.has(topic)) loadMembers(roomOf.get(topic)) })
  // Joins and leaves while the socket was down were not heard: list each joined room again.
  let opened = false
  client.on('open', () => {
    if (opened) for (const [name, room] of rooms) if (room.joined) loadMembers(name)
    opened = true
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
    rooms.set(name, { topic: config.topics[index], joined: false, messages: [], inHistory: false, unread: 0, members: new Map(), memberCount: 0 })
  })
  $('me').textContent = user
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
