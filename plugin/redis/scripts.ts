/**
 * Lua scripts of the Redis adapter, one Redis shard's side of the cluster. Each runs atomically:
 * that is what numbers messages in one order, routes each only to the nodes holding its recipients,
 * and keeps presence, routes and subscriptions consistent. Every key carries the shard's `{prefix}`
 * hash tag (ARGV `tag`); per-node inboxes and per-topic interest are named from it inside the script.
 *
 * Keys, under the tag T:
 * - T:seq, T:epoch: the shard's message counter and the name of its dataset.
 * - T:emitted: per node, the counter of the last message it emitted (a re-sent command is a no-op).
 * - T:nodes: live nodes and their deadlines; T:in:<uid>: a node's inbox stream, all it reads.
 * - T:at:<session>: the nodes holding a session, with their socket counts; T:node:<uid>: the reverse,
 *   and T:announced:<uid>, the sessions a node announces while it re-announces what it holds.
 * - T:presence, T:sockets, T:detached: sockets per session, in all, and sessions left without any.
 * - T:ts:<session>, T:tm:<topic>: a session's topics and a topic's sessions.
 * - T:int:<topic>: per node, how many of the sessions it holds are subscribed (routes publishes).
 * - T:hist:<session>, T:bc, T:th:<topic>: what resume reads back: sends, broadcasts, topic messages.
 * - T:pm:<topic>: a topic's members (`topicPresence`), each with its count of subscribed sessions on
 *   every node; T:pn:<uid>:<topic>: this node's share of those counts; T:pt:<uid>: the topics it has
 *   counts in; T:pnodes: the nodes with counts, so a dead node's members leave (PRESENCE_REAP).
 * - T:rv, T:rvu: revoked session ids and users, scored by the time of the revocation; kept one cookie
 *   lifetime and at most `maxRevocations` each.
 *
 * A session bound to a user is subscribed to the user's channel, a topic whose name starts with
 * a NUL byte (users/channel.ts): pushes to the user are publishes to it.
 */

// Shared by the emitting scripts: ignore a command ioredis re-sent after a reconnect, and append
// an entry to one node's inbox.
const COMMON = `
local function repeated (emitted, uid, counter)
  local last = tonumber(redis.call('HGET', emitted, uid) or '0')
  if tonumber(counter) <= last then return true end
  redis.call('HSET', emitted, uid, counter)
  return false
end
local function route (tag, node, id, payload, limit)
  redis.call('XADD', tag .. ':in:' .. node, 'MAXLEN', '~', limit, id, 'm', payload)
end
-- A message every live node must apply (revocations): numbered, then routed to each.
local function route_all (tag, nodes, payload, limit, now)
  local seq = redis.call('INCR', tag .. ':seq')
  for _, node in ipairs(redis.call('ZRANGEBYSCORE', nodes, now, '+inf')) do route(tag, node, seq .. '-0', payload, limit) end
  return seq
end
-- Remembers a revocation for one cookie lifetime, and at most cap of them (the oldest go first).
local function remember (key, member, score, now, lifetime, cap)
  redis.call('ZADD', key, 'GT', score, member)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (tonumber(now) - tonumber(lifetime)))
  local over = redis.call('ZCARD', key) - tonumber(cap)
  if over > 0 then redis.call('ZPOPMIN', key, over) end
end
-- A revoked session leaves its topics (and its user's channel) on every node holding it, and its history goes.
local function drop_session (tag, session)
  local holders = redis.call('HKEYS', tag .. ':at:' .. session)
  for _, topic in ipairs(redis.call('SMEMBERS', tag .. ':ts:' .. session)) do
    redis.call('SREM', tag .. ':tm:' .. topic, session)
    for _, node in ipairs(holders) do
      if redis.call('HINCRBY', tag .. ':int:' .. topic, node, -1) <= 0 then redis.call('HDEL', tag .. ':int:' .. topic, node) end
    end
  end
  redis.call('DEL', tag .. ':ts:' .. session, tag .. ':hist:' .. session)
end
`

/**
 * A message to one session (send, close): numbered, kept for resume unless volatile or a close,
 * and routed to the nodes holding the session. Nothing else reads it.
 * KEYS: emitted, seq, at:session, hist:session
 * ARGV: uid, counter, payload, keep ('1'/'0'), history limit, history ttl (ms), tag, inbox limit
 */
export const SEND = COMMON + `
if repeated(KEYS[1], ARGV[1], ARGV[2]) then return 0 end
local seq = redis.call('INCR', KEYS[2])
local id = seq .. '-0'
if ARGV[4] == '1' then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], id, 'm', ARGV[3])
  redis.call('PEXPIRE', KEYS[4], ARGV[6])
end
for _, node in ipairs(redis.call('HKEYS', KEYS[3])) do route(ARGV[7], node, id, ARGV[3], ARGV[8]) end
return seq
`

/**
 * A broadcast: numbered, kept for resume unless volatile, routed to every live node.
 * KEYS: emitted, seq, bc, nodes
 * ARGV: uid, counter, payload, keep, history limit, tag, inbox limit, now
 */
export const BROADCAST = COMMON + `
if repeated(KEYS[1], ARGV[1], ARGV[2]) then return 0 end
local seq = redis.call('INCR', KEYS[2])
local id = seq .. '-0'
if ARGV[4] == '1' then redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], id, 'm', ARGV[3]) end
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], ARGV[8], '+inf')) do route(ARGV[6], node, id, ARGV[3], ARGV[7]) end
return seq
`

/**
 * A topic message: numbered, kept for resume unless volatile, routed to the nodes holding a subscriber.
 * KEYS: emitted, seq, th:topic, int:topic
 * ARGV: uid, counter, payload, keep, history limit, history ttl, tag, inbox limit
 */
export const PUBLISH = COMMON + `
if repeated(KEYS[1], ARGV[1], ARGV[2]) then return 0 end
local seq = redis.call('INCR', KEYS[2])
local id = seq .. '-0'
if ARGV[4] == '1' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], id, 'm', ARGV[3])
  redis.call('PEXPIRE', KEYS[3], ARGV[6])
end
for _, node in ipairs(redis.call('HKEYS', KEYS[4])) do route(ARGV[7], node, id, ARGV[3], ARGV[8]) end
return seq
`

/**
 * Subscribes a session; the nodes holding it learn it in their inbox order, so a publish after
 * the change reaches the session. Returns -1 when it was subscribed already and -2 when it has
 * `maxTopics`: then nothing is written.
 * KEYS: emitted, seq, ts:session, tm:topic, at:session, int:topic, presence, detached
 * ARGV: uid, counter, payload, session, topic, maxTopics, releaseAt, tag, inbox limit
 */
export const SUBSCRIBE = COMMON + `
if repeated(KEYS[1], ARGV[1], ARGV[2]) then return 0 end
if redis.call('SISMEMBER', KEYS[3], ARGV[5]) == 1 then return -1 end
if string.byte(ARGV[5], 1) ~= 0 and redis.call('SCARD', KEYS[3]) >= tonumber(ARGV[6]) then
  -- the user's channel is not one of the session's topics
  local count = 0
  for _, topic in ipairs(redis.call('SMEMBERS', KEYS[3])) do
    if string.byte(topic, 1) ~= 0 then count = count + 1 end
  end
  if count >= tonumber(ARGV[6]) then return -2 end
end
redis.call('SADD', KEYS[3], ARGV[5])
redis.call('SADD', KEYS[4], ARGV[4])
-- a session nobody is connected as yet still expires after the grace period
if redis.call('HEXISTS', KEYS[7], ARGV[4]) == 0 then redis.call('ZADD', KEYS[8], 'NX', ARGV[7], ARGV[4]) end
local seq = redis.call('INCR', KEYS[2])
local id = seq .. '-0'
for _, node in ipairs(redis.call('HKEYS', KEYS[5])) do
  redis.call('HINCRBY', KEYS[6], node, 1)
  route(ARGV[8], node, id, ARGV[3], ARGV[9])
end
return seq
`

/**
 * Unsubscribes a session; -1 (and nothing written) when it was not subscribed.
 * KEYS: emitted, seq, ts:session, tm:topic, at:session, int:topic
 * ARGV: uid, counter, payload, session, topic, tag, inbox limit
 */
export const UNSUBSCRIBE = COMMON + `
if repeated(KEYS[1], ARGV[1], ARGV[2]) then return 0 end
if redis.call('SREM', KEYS[3], ARGV[5]) == 0 then return -1 end
redis.call('SREM', KEYS[4], ARGV[4])
local seq = redis.call('INCR', KEYS[2])
local id = seq .. '-0'
for _, node in ipairs(redis.call('HKEYS', KEYS[5])) do
  if redis.call('HINCRBY', KEYS[6], node, -1) <= 0 then redis.call('HDEL', KEYS[6], node) end
  route(ARGV[6], node, id, ARGV[3], ARGV[7])
end
return seq
`

// A node starts holding a session: publishes to its topics are routed to the node from now on,
// and the node learns the topics in its inbox order (a 'j' entry: the session and every topic).
const HOLD = `
local function hold (tag, uid, session, limit)
  local topics = redis.call('SMEMBERS', tag .. ':ts:' .. session)
  for _, topic in ipairs(topics) do redis.call('HINCRBY', tag .. ':int:' .. topic, uid, 1) end
  if #topics == 0 then return 0 end
  local entry = { 'j', session }
  for _, topic in ipairs(topics) do
    entry[#entry + 1] = 't'
    entry[#entry + 1] = topic
  end
  local seq = redis.call('INCR', tag .. ':seq')
  redis.call('XADD', tag .. ':in:' .. uid, 'MAXLEN', '~', limit, seq .. '-0', unpack(entry))
  return seq
end
`

/**
 * A socket of a session opened on this node. Binds the session to its cookie's user (`channel`, ''
 * when anonymous). Returns where the session stands (messages to it numbered above it reach the
 * node), the dataset's name, whether the cluster knew the session before (connected somewhere, or
 * within its grace period), and the number of the inbox entry that tells the node the session's
 * topics (0 when it already held the session, or it has none).
 * KEYS: at:session, node, presence, sockets, detached, seq, epoch
 * ARGV: uid, session, tag, inbox limit, channel
 */
export const JOIN = HOLD + `
local known = redis.call('HEXISTS', KEYS[3], ARGV[2]) == 1 or redis.call('ZSCORE', KEYS[5], ARGV[2]) ~= false
local topicsAt = 0
local bound = ARGV[5] ~= '' and redis.call('SADD', ARGV[3] .. ':ts:' .. ARGV[2], ARGV[5]) == 1
if bound then redis.call('SADD', ARGV[3] .. ':tm:' .. ARGV[5], ARGV[2]) end
if redis.call('HINCRBY', KEYS[1], ARGV[1], 1) == 1 then
  topicsAt = hold(ARGV[3], ARGV[1], ARGV[2], ARGV[4])
elseif bound then
  redis.call('HINCRBY', ARGV[3] .. ':int:' .. ARGV[5], ARGV[1], 1)
end
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
redis.call('ZREM', KEYS[5], ARGV[2])
redis.call('INCR', KEYS[4])
return { tonumber(redis.call('GET', KEYS[6]) or '0'), redis.call('GET', KEYS[7]) or '', known and 1 or 0, topicsAt }
`

// A node stops holding a session: no more publishes for its topics are routed there for it.
const RELEASE = `
local function release (tag, uid, session)
  redis.call('HDEL', tag .. ':at:' .. session, uid)
  for _, topic in ipairs(redis.call('SMEMBERS', tag .. ':ts:' .. session)) do
    local interest = tag .. ':int:' .. topic
    if redis.call('HINCRBY', interest, uid, -1) <= 0 then redis.call('HDEL', interest, uid) end
  end
end
`

/**
 * A socket closed on this node; a session left without sockets anywhere starts its grace period.
 * Nothing happens when this node's counts were already withdrawn (it was presumed dead).
 * KEYS: at:session, node, presence, sockets, detached
 * ARGV: uid, session, releaseAt, tag
 */
export const LEAVE = RELEASE + `
local mine = redis.call('HINCRBY', KEYS[2], ARGV[2], -1)
if mine <= 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end
if mine < 0 then return end
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then release(ARGV[4], ARGV[1], ARGV[2]) end
if redis.call('HINCRBY', KEYS[3], ARGV[2], -1) <= 0 then
  redis.call('HDEL', KEYS[3], ARGV[2])
  redis.call('ZADD', KEYS[5], ARGV[3], ARGV[2])
end
redis.call('DECR', KEYS[4])
`

// Withdraws everything one node held (presence, routes, interest); shared by SYNC_BEGIN and REAP.
const WITHDRAW = RELEASE + `
local function withdraw (tag, uid, releaseAt)
  local node = tag .. ':node:' .. uid
  local counts = redis.call('HGETALL', node)
  for i = 1, #counts, 2 do
    local session = counts[i]
    release(tag, uid, session)
    if redis.call('HINCRBY', tag .. ':presence', session, -tonumber(counts[i + 1])) <= 0 then
      redis.call('HDEL', tag .. ':presence', session)
      redis.call('ZADD', tag .. ':detached', releaseAt, session)
    end
    redis.call('DECRBY', tag .. ':sockets', counts[i + 1])
  end
  redis.call('DEL', node)
end
`

/**
 * Starts announcing what this node holds (at start, after an outage, after being presumed dead):
 * marks it alive and opens the set of sessions announced in this round. SYNC_ADD follows in
 * batches, and SYNC_END withdraws what was not announced, so a session the node still holds is
 * routed to it all along: nothing sent meanwhile misses it.
 * KEYS: nodes, announced   ARGV: uid, aliveUntil
 */
export const SYNC_BEGIN = `
redis.call('DEL', KEYS[2])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
`

/**
 * Announces a batch of the sessions this node holds, with their socket counts. A session the node
 * did not hold yet (after it was presumed dead, or Redis lost its data) is held again, and the node
 * relearns its topics in its inbox order.
 * KEYS: node, presence, sockets, detached, announced   ARGV: tag, uid, inbox limit, session, count, …
 */
export const SYNC_ADD = HOLD + `
for i = 4, #ARGV, 2 do
  local session, count = ARGV[i], tonumber(ARGV[i + 1])
  local before = tonumber(redis.call('HGET', KEYS[1], session) or '0')
  redis.call('SADD', KEYS[5], session)
  redis.call('HSET', KEYS[1], session, count)
  if redis.call('HINCRBY', KEYS[2], session, count - before) > 0 then redis.call('ZREM', KEYS[4], session) end
  redis.call('INCRBY', KEYS[3], count - before)
  if redis.call('HSET', ARGV[1] .. ':at:' .. session, ARGV[2], count) == 1 then hold(ARGV[1], ARGV[2], session, ARGV[3]) end
end
`

/**
 * Ends an announcement: withdraws the sessions this node no longer holds.
 * KEYS: node, presence, sockets, detached, announced   ARGV: tag, uid, releaseAt
 */
export const SYNC_END = RELEASE + `
local counts = redis.call('HGETALL', KEYS[1])
for i = 1, #counts, 2 do
  local session = counts[i]
  if redis.call('SISMEMBER', KEYS[5], session) == 0 then
    release(ARGV[1], ARGV[2], session)
    redis.call('HDEL', KEYS[1], session)
    if redis.call('HINCRBY', KEYS[2], session, -tonumber(counts[i + 1])) <= 0 then
      redis.call('HDEL', KEYS[2], session)
      redis.call('ZADD', KEYS[4], ARGV[3], session)
    end
    redis.call('DECRBY', KEYS[3], counts[i + 1])
  end
end
redis.call('DEL', KEYS[5])
`

/**
 * Cleans up after dead nodes (no heartbeat until their deadline): their presence, routes, inbox.
 * Ends sessions whose grace period is over: their subscriptions and history go. Handles at most
 * `limit` sessions; returns how many it ended, so the caller runs it again while there are more.
 * KEYS: nodes, emitted, presence, detached
 * ARGV: now, releaseAt, tag, limit
 */
export const REAP = WITHDRAW + `
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 16)
for _, uid in ipairs(dead) do
  withdraw(ARGV[3], uid, ARGV[2])
  redis.call('DEL', ARGV[3] .. ':in:' .. uid)
  redis.call('ZREM', KEYS[1], uid)
  redis.call('HDEL', KEYS[2], uid)
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[4]))
for _, session in ipairs(expired) do
  redis.call('ZREM', KEYS[4], session)
  if redis.call('HEXISTS', KEYS[3], session) == 0 then
    local topics = ARGV[3] .. ':ts:' .. session
    for _, topic in ipairs(redis.call('SMEMBERS', topics)) do redis.call('SREM', ARGV[3] .. ':tm:' .. topic, session) end
    redis.call('DEL', topics, ARGV[3] .. ':hist:' .. session)
  end
end
return #expired
`

/**
 * A session moves to a new id (login) on this shard, bound to `channel` ('' when anonymous): the
 * nodes holding it, its presence, topics, history and grace period follow; the old id is revoked.
 * Every live node learns it in its inbox order (it refuses the old id from then on; the nodes
 * holding the session move it). A session the cluster does not know leaves nothing behind but
 * the revocation: its first socket binds it (JOIN).
 * KEYS: emitted, nodes, rv, presence, detached
 * ARGV: uid, counter, payload, old, new, channel, tag, inbox limit, now, cap, lifetime (ms), releaseAt
 */
export const ROTATE = COMMON + `
if repeated(KEYS[1], ARGV[1], ARGV[2]) then return 0 end
local tag, old, new, channel = ARGV[7], ARGV[4], ARGV[5], ARGV[6]
remember(KEYS[3], old, ARGV[9], ARGV[9], ARGV[11], ARGV[10])
local holders = redis.call('HGETALL', tag .. ':at:' .. old)
for i = 1, #holders, 2 do
  local node, count = holders[i], holders[i + 1]
  redis.call('HINCRBY', tag .. ':at:' .. new, node, count)
  local held = tag .. ':node:' .. node
  local mine = redis.call('HGET', held, old)
  if mine then
    redis.call('HDEL', held, old)
    redis.call('HINCRBY', held, new, mine)
  end
end
redis.call('DEL', tag .. ':at:' .. old)
local sockets = redis.call('HGET', KEYS[4], old)
if sockets then
  redis.call('HDEL', KEYS[4], old)
  redis.call('HINCRBY', KEYS[4], new, sockets)
end
local releaseAt = redis.call('ZSCORE', KEYS[5], old)
if releaseAt then redis.call('ZREM', KEYS[5], old) end
local topics = redis.call('SMEMBERS', tag .. ':ts:' .. old)
for _, topic in ipairs(topics) do
  redis.call('SREM', tag .. ':tm:' .. topic, old)
  if string.byte(topic, 1) == 0 and topic ~= channel then
    -- the session leaves its former user
    for i = 1, #holders, 2 do
      local interest = tag .. ':int:' .. topic
      if redis.call('HINCRBY', interest, holders[i], -1) <= 0 then redis.call('HDEL', interest, holders[i]) end
    end
  else
    redis.call('SADD', tag .. ':ts:' .. new, topic)
    redis.call('SADD', tag .. ':tm:' .. topic, new)
  end
end
redis.call('DEL', tag .. ':ts:' .. old)
if redis.call('EXISTS', tag .. ':hist:' .. old) == 1 then redis.call('RENAME', tag .. ':hist:' .. old, tag .. ':hist:' .. new) end
local known = #holders > 0 or sockets or releaseAt or #topics > 0
if known and channel ~= '' and redis.call('SADD', tag .. ':ts:' .. new, channel) == 1 then
  redis.call('SADD', tag .. ':tm:' .. channel, new)
  for i = 1, #holders, 2 do redis.call('HINCRBY', tag .. ':int:' .. channel, holders[i], 1) end
end
-- a session without sockets keeps the grace period it had (or starts one: its topics must expire)
if known and redis.call('HEXISTS', KEYS[4], new) == 0 then redis.call('ZADD', KEYS[5], 'NX', releaseAt or ARGV[12], new) end
return route_all(tag, KEYS[2], ARGV[3], ARGV[8], ARGV[9])
`

/**
 * Revokes a session (logout): remembered, out of its topics and its user's channel, its history
 * gone; every live node learns it in its inbox order (refuses the id, closes its sockets).
 * KEYS: emitted, nodes, rv
 * ARGV: uid, counter, payload, session, tag, inbox limit, now, cap, lifetime (ms)
 */
export const REVOKE = COMMON + `
if repeated(KEYS[1], ARGV[1], ARGV[2]) then return 0 end
remember(KEYS[3], ARGV[4], ARGV[7], ARGV[7], ARGV[9], ARGV[8])
drop_session(ARGV[5], ARGV[4])
return route_all(ARGV[5], KEYS[2], ARGV[3], ARGV[6], ARGV[7])
`

/**
 * Revokes every session of a user on this shard ("log out everywhere"): the user is remembered with
 * the time up to which its cookies are refused, its sessions here leave their topics, and every
 * live node learns it in its inbox order.
 * KEYS: emitted, nodes, rvu, tm:channel, th:channel
 * ARGV: uid, counter, payload, user, before, tag, inbox limit, now, cap, lifetime (ms)
 */
export const REVOKE_USER = COMMON + `
if repeated(KEYS[1], ARGV[1], ARGV[2]) then return 0 end
remember(KEYS[3], ARGV[4], ARGV[5], ARGV[8], ARGV[10], ARGV[9])
for _, session in ipairs(redis.call('SMEMBERS', KEYS[4])) do drop_session(ARGV[6], session) end
redis.call('DEL', KEYS[4], KEYS[5])
return route_all(ARGV[6], KEYS[2], ARGV[3], ARGV[7], ARGV[8])
`

/**
 * Names the shard's dataset (once per Redis dataset) and returns it with the current sequence number.
 * KEYS: epoch, seq   ARGV: candidate epoch
 */
export const EPOCH = `
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return { redis.call('GET', KEYS[1]), tonumber(redis.call('GET', KEYS[2]) or '0') }
`

/**
 * Sets this node's count of members of a topic (absolute, so a repeat changes nothing), and returns
 * the members who joined the cluster's topic (0 to more) and who left it (more to 0). With `full`,
 * members of this node not listed go to 0.
 * KEYS: pm:topic, pn:uid:topic, pt:uid, pnodes
 * ARGV: topic, full ('1'/'0'), uid, member, count, member, count…
 */
export const PRESENCE_SET = `
local joined, left = {}, {}
local function set (member, count)
  local old = tonumber(redis.call('HGET', KEYS[2], member) or '0')
  local delta = count - old
  if delta == 0 then return end
  if count > 0 then redis.call('HSET', KEYS[2], member, count) else redis.call('HDEL', KEYS[2], member) end
  local total = redis.call('HINCRBY', KEYS[1], member, delta)
  local before = total - delta
  if total <= 0 then
    redis.call('HDEL', KEYS[1], member)
    if before > 0 then left[#left + 1] = member end
  elseif before <= 0 then
    joined[#joined + 1] = member
  end
end
if ARGV[2] == '1' then
  local listed = {}
  for i = 4, #ARGV, 2 do listed[ARGV[i]] = true end
  for _, member in ipairs(redis.call('HKEYS', KEYS[2])) do
    if not listed[member] then set(member, 0) end
  end
end
for i = 4, #ARGV, 2 do set(ARGV[i], tonumber(ARGV[i + 1])) end
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('SADD', KEYS[3], ARGV[1])
  redis.call('SADD', KEYS[4], ARGV[3])
else
  redis.call('SREM', KEYS[3], ARGV[1])
end
return { joined, left }
`

/**
 * Withdraws the member counts of nodes whose heartbeat stopped (or that are gone from T:nodes):
 * returns topic, member pairs of the members who left the cluster's topic with them.
 * KEYS: nodes, pnodes   ARGV: now, tag
 */
export const PRESENCE_REAP = `
local dropped = {}
for _, uid in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local deadline = redis.call('ZSCORE', KEYS[1], uid)
  if not deadline or tonumber(deadline) < tonumber(ARGV[1]) then
    local topics = ARGV[2] .. ':pt:' .. uid
    for _, topic in ipairs(redis.call('SMEMBERS', topics)) do
      local mine = ARGV[2] .. ':pn:' .. uid .. ':' .. topic
      local members = ARGV[2] .. ':pm:' .. topic
      local counts = redis.call('HGETALL', mine)
      for i = 1, #counts, 2 do
        if redis.call('HINCRBY', members, counts[i], -tonumber(counts[i + 1])) <= 0 then
          redis.call('HDEL', members, counts[i])
          dropped[#dropped + 1] = topic
          dropped[#dropped + 1] = counts[i]
        end
      end
      redis.call('DEL', mine)
    end
    redis.call('DEL', topics)
    redis.call('SREM', KEYS[2], uid)
  end
end
return dropped
`

export type ScriptArg = string | number | Buffer

/** The scripts as ioredis commands on every connection of the adapter. */
export interface ScriptCommands {
  glueSend (...args: ScriptArg[]): Promise<number>
  glueBroadcast (...args: ScriptArg[]): Promise<number>
  gluePublish (...args: ScriptArg[]): Promise<number>
  glueSubscribe (...args: ScriptArg[]): Promise<number>
  glueUnsubscribe (...args: ScriptArg[]): Promise<number>
  glueJoin (...args: ScriptArg[]): Promise<[seq: number, epoch: string, known: number, topicsAt: number]>
  glueLeave (...args: ScriptArg[]): Promise<null>
  glueSyncBegin (...args: ScriptArg[]): Promise<null>
  glueSyncAdd (...args: ScriptArg[]): Promise<null>
  glueSyncEnd (...args: ScriptArg[]): Promise<null>
  glueReap (...args: ScriptArg[]): Promise<number>
  glueEpoch (...args: ScriptArg[]): Promise<[epoch: string, seq: number]>
  glueRotate (...args: ScriptArg[]): Promise<number>
  glueRevoke (...args: ScriptArg[]): Promise<number>
  glueRevokeUser (...args: ScriptArg[]): Promise<number>
  gluePresenceSet (...args: ScriptArg[]): Promise<[joined: string[], left: string[]]>
  gluePresenceReap (...args: ScriptArg[]): Promise<string[]>
}

/** Name, number of KEYS and source of every script, for `defineCommand`. */
export const SCRIPTS: ReadonlyArray<[name: keyof ScriptCommands, keys: number, lua: string]> = [
  ['glueSend', 4, SEND],
  ['glueBroadcast', 4, BROADCAST],
  ['gluePublish', 4, PUBLISH],
  ['glueSubscribe', 8, SUBSCRIBE],
  ['glueUnsubscribe', 6, UNSUBSCRIBE],
  ['glueJoin', 7, JOIN],
  ['glueLeave', 5, LEAVE],
  ['glueSyncBegin', 2, SYNC_BEGIN],
  ['glueSyncAdd', 5, SYNC_ADD],
  ['glueSyncEnd', 5, SYNC_END],
  ['glueReap', 4, REAP],
  ['glueEpoch', 2, EPOCH],
  ['glueRotate', 5, ROTATE],
  ['glueRevoke', 3, REVOKE],
  ['glueRevokeUser', 5, REVOKE_USER],
  ['gluePresenceSet', 4, PRESENCE_SET],
  ['gluePresenceReap', 2, PRESENCE_REAP]
]
