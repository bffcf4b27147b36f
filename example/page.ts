/** The example page: loads the classic client build from the plugin's URL and drives it with buttons. */
export const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fastify-websocket-glue example</title>
<link rel="icon" href="data:,">
<style>
  body { font: 15px/1.4 system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.3rem; }
  .row { display: flex; gap: .5rem; margin: .6rem 0; align-items: center; flex-wrap: wrap; }
  input { flex: 1; min-width: 12rem; padding: .35rem .5rem; font: inherit; }
  button { padding: .35rem .8rem; font: inherit; cursor: pointer; }
  button:disabled { cursor: default; opacity: .45; }
  #state { font-weight: 600; padding: .1rem .5rem; border-radius: .3rem; background: #eee; }
  #state[data-state="open"] { background: #c8f0c8; }
  #state[data-state="connecting"], #state[data-state="reconnecting"] { background: #fbe7b2; }
  #state[data-state="closed"] { background: #f4c7c7; }
  #log { list-style: none; padding: .5rem; margin: 0; height: 22rem; overflow-y: auto; background: #f6f6f6;
    border: 1px solid #ddd; font: 13px/1.45 ui-monospace, monospace; }
  #topic[data-topic="on"] { font-weight: 600; color: #05540a; }
  #numbers { flex-basis: 100%; max-height: 6rem; overflow-y: auto; margin: 0; font: 13px/1.45 ui-monospace, monospace; overflow-wrap: anywhere; }
  #log .in { color: #05540a; } #log .out { color: #123f8c; } #log .info { color: #666; } #log .error { color: #a00; }
</style>
</head>
<body>
<h1>fastify-websocket-glue example</h1>
<div class="row">State: <span id="state" data-state="connecting">connecting</span> Session: <code id="session">none yet</code></div>
<div class="row">
  <button id="connect" disabled title="Connects again after Disconnect; while reconnecting, tries at once">Connect</button>
  <button id="disconnect">Disconnect</button>
  <button id="notify" title="POST /notify: the server pushes to this browser's session">Notify</button>
</div>
<div class="row">
  <button id="subscribe" title="client.subscribe('news'): the periodic broadcast is also published to this topic">Subscribe news</button>
  <button id="unsubscribe" disabled title="client.unsubscribe('news'): for every tab of this session">Unsubscribe news</button>
  <span title="The subscription belongs to the session: every tab of this browser shows the same">News: <span id="topic" data-topic="off">off</span></span>
  <button id="request" title="client.request({ op: 'time' }): the server's answerRequest answers">Ask the time</button>
</div>
<div class="row">
  <button id="stream" title="POST /stream: the server pushes 1, 2, 3 … to this session; cut the connection and see none lost">Stream numbers</button>
  <button id="stream-stop" disabled title="DELETE /stream">Stop stream</button>
  <span>Last: <span id="last-number" data-last="0">none</span></span>
  <p id="numbers" aria-label="Numbers received"></p>
</div>
<div class="row">
  <input id="name" value="ada" aria-label="Name" style="flex: 0 1 10rem">
  <button id="login" title="POST /login: the session moves to a new id bound to this name; the socket stays open">Log in</button>
  <button id="to-user" title="POST /to-user: the server pushes to every tab of every browser logged in with this name">To user</button>
  <button id="logout" title="POST /logout: the session is revoked and its sockets close with 3000">Log out</button>
  <span>User: <span id="user" data-user="">anonymous</span></span>
</div>
<div class="row">
  <input id="message" value="ping" aria-label="Message">
  <button id="send">Send</button>
</div>
<ul id="log" aria-live="polite"></ul>
<script src="/_glue/glue-client.global.js"></script>
<script>
  const $ = (id) => document.getElementById(id)
  const log = (kind, text) => {
    const item = document.createElement('li')
    item.className = kind
    item.textContent = new Date().toLocaleTimeString() + '  ' + text
    $('log').append(item)
    $('log').scrollTop = $('log').scrollHeight
  }

  // Connects at once; reconnects by itself after a cut or a server restart.
  const glue = new GlueClient()
  let newsOn = false
  let streaming = false
  // Buttons that cannot act are disabled: nothing to send or ask while closed, nothing to connect while open.
  const render = () => {
    const state = glue.state
    $('state').textContent = state
    $('state').dataset.state = state
    $('connect').disabled = state === 'open' || state === 'connecting'
    $('connect').textContent = state === 'reconnecting' ? 'Reconnect now' : 'Connect'
    for (const id of ['disconnect', 'send', 'request']) $(id).disabled = state === 'closed'
    $('subscribe').disabled = state === 'closed' || newsOn
    $('unsubscribe').disabled = state === 'closed' || !newsOn
    $('stream-stop').disabled = !streaming
  }
  const setTopic = (on) => {
    newsOn = on
    $('topic').textContent = on ? 'subscribed' : 'off'
    $('topic').dataset.topic = on ? 'on' : 'off'
    render()
  }
  const showTopics = (topics) => setTopic(topics.includes('news'))
  glue.on('statechange', render)
  glue.on('open', () => {
    log('info', 'open ' + glue.url)
    // Another tab of this session may have subscribed or unsubscribed meanwhile: ask the server.
    glue.request({ op: 'topics' }).then(({ topics }) => showTopics(topics), (err) => log('error', 'topics: ' + err.code))
  })
  const show = (data) => typeof data === 'string' ? data
    : data instanceof ArrayBuffer ? '[binary ' + data.byteLength + ' bytes]' : JSON.stringify(data)
  // Numbers of the stream go to their own line; the page shows what arrived, as it arrived.
  let lastNumber = 0
  const number = (n) => {
    $('numbers').append(($('numbers').textContent === '' ? '' : ' ') + n)
    lastNumber = n
    $('last-number').textContent = n
    $('last-number').dataset.last = n
  }
  const startStream = async () => {
    streaming = true
    render()
    const response = await fetch('/stream?from=' + (lastNumber + 1), { method: 'POST' })
    log(response.ok ? 'info' : 'error', 'POST /stream ' + response.status + ' ' + JSON.stringify(await response.json()))
  }
  glue.on('gap', ({ missed }) => {
    log('error', 'gap: ' + (missed === null ? 'an unknown number of' : missed) + ' messages lost')
    // The server lost the session's state (a restart, an expiry): ask for the stream again from where the page is.
    if (missed === null && streaming) startStream()
  })
  glue.on('message', ({ data }) => {
    if (data !== null && typeof data === 'object' && typeof data.stream === 'number') {
      number(data.stream)
      return
    }
    // A tab of this session changed its subscriptions ({ op: 'share-topics' }).
    if (data !== null && typeof data === 'object' && Array.isArray(data.topics)) {
      showTopics(data.topics)
      log('info', 'news for this session: ' + (data.topics.includes('news') ? 'subscribed' : 'off'))
      return
    }
    const text = show(data)
    if (text.startsWith('welcome ')) $('session').textContent = text.slice('welcome '.length)
    log('in', '\\u2190 ' + text)
  })
  glue.onTopic('news', ({ topic, data }) => log('in', '\\u2190 [' + topic + '] ' + show(data)))
  glue.on('close', ({ code, reason, willReconnect }) => {
    log('info', 'close ' + code + (reason ? ' ' + reason : '') + (willReconnect ? ', will reconnect' : ''))
  })
  glue.on('revoked', ({ reason }) => log('error', 'revoked: ' + reason + ', not reconnecting'))
  glue.on('reconnecting', ({ attempt, delay }) => log('info', 'reconnecting: attempt ' + attempt + ' in ' + delay + ' ms'))
  glue.on('error', (err) => log('error', err.code + ': ' + err.message))

  $('connect').onclick = () => glue.connect()
  $('disconnect').onclick = () => glue.close()
  const send = () => {
    const text = $('message').value
    if (glue.send(text)) log('out', '\\u2192 ' + text + (glue.state === 'open' ? '' : ' (queued)'))
  }
  $('send').onclick = send
  $('message').onkeydown = (event) => { if (event.key === 'Enter') send() }
  // Tells every tab of the session, this one included, what the session is subscribed to now.
  const shareTopics = () => glue.request({ op: 'share-topics' }).catch((err) => log('error', 'share-topics: ' + err.code))
  $('subscribe').onclick = async () => {
    try {
      await glue.subscribe('news')
      setTopic(true)
      log('info', 'subscribed to news')
      shareTopics()
    } catch (err) {
      log('error', 'subscribe: ' + err.code + ': ' + err.message)
    }
  }
  $('unsubscribe').onclick = async () => {
    const was = await glue.unsubscribe('news').catch((err) => err.code)
    log('info', 'unsubscribed from news (' + was + ')')
    if (was === true || was === false) setTopic(false)
    shareTopics()
  }
  $('request').onclick = async () => {
    log('out', '\\u2192 request {"op":"time"}')
    try {
      log('in', '\\u2190 reply ' + JSON.stringify(await glue.request({ op: 'time' }, { timeout: 5000 })))
    } catch (err) {
      log('error', 'request: ' + err.code + ': ' + err.message)
    }
  }
  $('stream').onclick = startStream
  $('stream-stop').onclick = async () => {
    streaming = false
    render()
    const response = await fetch('/stream', { method: 'DELETE' })
    log('info', 'DELETE /stream ' + response.status + ' ' + JSON.stringify(await response.json()))
  }
  const showUser = (user) => {
    $('user').textContent = user ?? 'anonymous'
    $('user').dataset.user = user ?? ''
  }
  fetch('/me').then((response) => response.json()).then(({ user }) => showUser(user), () => {})
  const post = async (path, body) => {
    const response = await fetch(path, body === undefined ? { method: 'POST' } : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    const reply = await response.json()
    log(response.ok ? 'info' : 'error', 'POST ' + path + ' ' + response.status + ' ' + JSON.stringify(reply))
    return response.ok ? reply : undefined
  }
  $('login').onclick = async () => {
    const reply = await post('/login', { name: $('name').value })
    if (reply !== undefined) showUser(reply.user)
  }
  $('to-user').onclick = () => post('/to-user')
  $('logout').onclick = async () => {
    if (await post('/logout') !== undefined) showUser(null)
  }
  $('notify').onclick = async () => {
    const response = await fetch('/notify', { method: 'POST' })
    const body = await response.json()
    log(response.ok ? 'info' : 'error', 'POST /notify ' + response.status + ' ' + JSON.stringify(body))
  }
  render()
</script>
</body>
</html>
`
