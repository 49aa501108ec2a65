-- Ends the answer to one message: the events still queued, final event, record done, inbox
-- popped, history appended; and when nothing else waits, the lease released with a
-- `status: idle` event, in one step.
-- KEYS[1] lease  KEYS[2] events  KEYS[3] channel  KEYS[4] messages  KEYS[5] inbox  KEYS[6] history
-- KEYS[7] meta  KEYS[8] fence
-- ARGV[1] fencing token  ARGV[2] chat id  ARGV[3] final event body (reply.end or error)
-- ARGV[4] idle status body  ARGV[5] events maxlen  ARGV[6] history max entries
-- ARGV[7] session ttl (s)  ARGV[8] n: events to append before the final one
-- ARGV[9..8+n] those events' bodies (JSON), oldest first  ARGV[9+n..] history entries (JSON)
-- Run again for a message already done (its reply was lost), it ends nothing twice. The session's
-- keys live on from here: the messages waiting must outlast the answer in progress. This script
-- only lengthens a TTL (accepting a message and joining set the gateway's, which should agree).
-- Returns {final eventId, messages still waiting}, or false when the lease was lost.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local raw = redis.call('HGET', KEYS[4], ARGV[2])
local record = raw and cjson.decode(raw)
if record and record.state == 'done' then
  return {record.finalId or '', redis.call('LLEN', KEYS[5])}
end
local before = tonumber(ARGV[8])
for i = 9, 8 + before do
  emit(KEYS[2], ARGV[i], ARGV[5])
end
local finalId = emit(KEYS[2], ARGV[3], ARGV[5])
if record then
  record.state = 'done'
  record.finalId = finalId
  redis.call('HSET', KEYS[4], ARGV[2], cjson.encode(record))
end
redis.call('LREM', KEYS[5], 1, ARGV[2])
local waiting = redis.call('LLEN', KEYS[5])
if waiting == 0 then
  redis.call('DEL', KEYS[1])
  emit(KEYS[2], ARGV[4], ARGV[5])
end
-- Published before the bookkeeping below: should that fail, the events stored are also sent.
publish(KEYS[3])
for i = 9 + before, #ARGV do
  redis.call('RPUSH', KEYS[6], ARGV[i])
end
redis.call('LTRIM', KEYS[6], -tonumber(ARGV[6]), -1)
local ttl = tonumber(ARGV[7])
for _, key in ipairs({KEYS[2], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]}) do
  -- TTL is -2 for a key that does not exist: EXPIRE leaves it so.
  if redis.call('TTL', key) < ttl then redis.call('EXPIRE', key, ttl) end
end
return {finalId, waiting}
