/**
 * Lua scripts of the Redis adapter. Each runs atomically, which is what keeps the cluster order,
 * presence counts and subscriptions consistent between nodes. Every key shares the `{prefix}`
 * hash tag, so the scripts also run on one shard of a Redis Cluster.
 */

/**
 * Numbers a message and appends it to the stream; applies a subscription change in the same step.
 * A node's counter makes a command that ioredis re-sends after a reconnect a no-op.
 * KEYS: seq, stream, emitted, subs, presence, detached
 * ARGV: maxlen, uid, counter, payload, op ('', 's', 'u'), sessionId, topic, releaseAt
 */
export const EMIT = `
local last = tonumber(redis.call('HGET', KEYS[3], ARGV[2]) or '0')
if tonumber(ARGV[3]) <= last then return 0 end
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
if ARGV[5] ~= '' then
  local raw = redis.call('HGET', KEYS[4], ARGV[6])
  local topics = {}
  if raw then topics = cjson.decode(raw) end
  local found = 0
  for i, topic in ipairs(topics) do
    if topic == ARGV[7] then found = i end
  end
  if ARGV[5] == 's' then
    if found == 0 then table.insert(topics, ARGV[7]) end
    -- a session nobody is connected as yet still expires after the grace period
    if redis.call('HEXISTS', KEYS[5], ARGV[6]) == 0 then redis.call('ZADD', KEYS[6], 'NX', ARGV[8], ARGV[6]) end
  elseif found > 0 then
    table.remove(topics, found)
  end
  if #topics == 0 then redis.call('HDEL', KEYS[4], ARGV[6]) else redis.call('HSET', KEYS[4], ARGV[6], cjson.encode(topics)) end
end
local seq = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], seq .. '-0', 'm', ARGV[4])
return seq
`

/**
 * Names the delivery state (once per Redis dataset) and returns it with the current sequence
 * number and every subscription, as one consistent snapshot.
 * KEYS: epoch, seq, subs   ARGV: candidate epoch
 */
export const SNAPSHOT = `
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return { redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2]) or '0', redis.call('HGETALL', KEYS[3]) }
`

/** The current epoch, naming a new one when Redis has none (fresh or emptied). KEYS: epoch   ARGV: candidate */
export const EPOCH = `
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
`

/**
 * A socket opened on this node. KEYS: presence, node, detached, sockets   ARGV: sessionId
 */
export const JOIN = `
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('INCR', KEYS[4])
`

/**
 * A socket closed on this node; a session left without sockets anywhere starts its grace period.
 * Nothing happens when this node's counts were already withdrawn (it was presumed dead).
 * KEYS: presence, node, detached, sockets   ARGV: sessionId, releaseAt
 */
export const LEAVE = `
local mine = redis.call('HINCRBY', KEYS[2], ARGV[1], -1)
if mine <= 0 then redis.call('HDEL', KEYS[2], ARGV[1]) end
if mine < 0 then return end
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
end
redis.call('DECR', KEYS[4])
`

// Withdraws one node's presence counts; shared by SYNC_NODE and REAP.
const WITHDRAW = `
local function withdraw (presence, detached, sockets, node, releaseAt)
  local counts = redis.call('HGETALL', node)
  for i = 1, #counts, 2 do
    local left = redis.call('HINCRBY', presence, counts[i], -tonumber(counts[i + 1]))
    if left <= 0 then
      redis.call('HDEL', presence, counts[i])
      redis.call('ZADD', detached, releaseAt, counts[i])
    end
    redis.call('DECRBY', sockets, counts[i + 1])
  end
  redis.call('DEL', node)
end
`

/**
 * Replaces this node's presence with what it holds now (at start, after an outage, after being
 * presumed dead) and marks it alive.
 * KEYS: presence, node, detached, sockets, nodes   ARGV: uid, aliveUntil, releaseAt, sessionId, count, …
 */
export const SYNC_NODE = WITHDRAW + `
withdraw(KEYS[1], KEYS[3], KEYS[4], KEYS[2], ARGV[3])
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('ZREM', KEYS[3], ARGV[i])
  redis.call('INCRBY', KEYS[4], ARGV[i + 1])
end
redis.call('ZADD', KEYS[5], ARGV[2], ARGV[1])
`

/**
 * Cleans up after dead nodes (no heartbeat until their deadline) and ends sessions whose grace
 * period is over: their subscriptions go, announced on the stream as an expire message.
 * KEYS: presence, detached, sockets, nodes, emitted, subs, seq, stream
 * ARGV: now, releaseAt, maxlen, key prefix
 */
export const REAP = WITHDRAW + `
local dead = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', ARGV[1], 'LIMIT', 0, 16)
for _, uid in ipairs(dead) do
  withdraw(KEYS[1], KEYS[2], KEYS[3], ARGV[4] .. ':node:' .. uid, ARGV[2])
  redis.call('ZREM', KEYS[4], uid)
  redis.call('HDEL', KEYS[5], uid)
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, 100)
for _, sessionId in ipairs(expired) do
  redis.call('ZREM', KEYS[2], sessionId)
  if redis.call('HEXISTS', KEYS[1], sessionId) == 0 and redis.call('HDEL', KEYS[6], sessionId) == 1 then
    local seq = redis.call('INCR', KEYS[7])
    -- codec v1, kind 7 (expire), no flags, time 0, then the session id as a u16-prefixed field
    local entry = string.char(1, 7, 0, 0, 0, 0, 0, 0, 0, math.floor(#sessionId / 256), #sessionId % 256) .. sessionId
    redis.call('XADD', KEYS[8], 'MAXLEN', '~', ARGV[3], seq .. '-0', 'm', entry)
  end
end
return #dead
`

/** An argument of a script call. */
export type ScriptArg = string | number | Buffer

/** The scripts as ioredis commands (`defineCommand`): KEYS first, then ARGV, as documented above. */
export interface ScriptCommands {
  glueEmit (...args: ScriptArg[]): Promise<number>
  glueSnapshot (...args: ScriptArg[]): Promise<[string, string, string[]]>
  glueEpoch (...args: ScriptArg[]): Promise<string>
  glueJoin (...args: ScriptArg[]): Promise<null>
  glueLeave (...args: ScriptArg[]): Promise<null>
  glueSyncNode (...args: ScriptArg[]): Promise<null>
  glueReap (...args: ScriptArg[]): Promise<number>
}

/** Every script with its command name and number of keys, to define on each connection. */
export const SCRIPTS: ReadonlyArray<[name: keyof ScriptCommands, keys: number, lua: string]> = [
  ['glueEmit', 6, EMIT],
  ['glueSnapshot', 3, SNAPSHOT],
  ['glueEpoch', 1, EPOCH],
  ['glueJoin', 4, JOIN],
  ['glueLeave', 4, LEAVE],
  ['glueSyncNode', 5, SYNC_NODE],
  ['glueReap', 8, REAP]
]
