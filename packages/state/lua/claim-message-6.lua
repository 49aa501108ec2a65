-- Claims the next message of a session to answer, in one step: the lease taken (else 'busy') or
-- still held, the inbox's head (ids whose record is gone are dropped; its record counts the try),
-- whether the client already asked to stop it, and the history. A holder that finds nothing lets
-- go here, so that no message can arrive between its last look and its release.
-- KEYS[1] lease  KEYS[2] fence  KEYS[3] inbox  KEYS[4] messages  KEYS[5] history  KEYS[6] cancels
-- ARGV[1] fencing token already held, or '' to take the lease  ARGV[2] lease ttl (ms)
-- ARGV[3] '1' to return the history
-- Returns {'busy'} (another worker holds the lease) | {'lost'} | {'nothing'} (no message waits;
--   lease not taken, or let go) | {'claimed', fence, head id, head record, cancel requested (0|1),
--   history...}
local held = ARGV[1]
if held == '' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return {'busy'} end
  if redis.call('LLEN', KEYS[3]) == 0 then return {'nothing'} end
elseif redis.call('GET', KEYS[1]) ~= held then
  return {'lost'}
end
local id, record
while true do
  id = redis.call('LINDEX', KEYS[3], 0)
  if not id then
    if held ~= '' then redis.call('DEL', KEYS[1]) end
    return {'nothing'}
  end
  record = redis.call('HGET', KEYS[4], id)
  if record then break end
  redis.call('LREM', KEYS[3], 1, id)
end
-- giveUp ends a message only if workers started on it often enough to call it a poison.
local decoded = cjson.decode(record)
decoded.tries = (decoded.tries or 0) + 1
record = cjson.encode(decoded)
redis.call('HSET', KEYS[4], id, record)
local fence = held
if held == '' then
  fence = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], fence, 'PX', ARGV[2])
end
local reply = {'claimed', tostring(fence), id, record, redis.call('SISMEMBER', KEYS[6], id)}
if ARGV[3] == '1' then
  for _, turn in ipairs(redis.call('LRANGE', KEYS[5], 0, -1)) do
    reply[#reply + 1] = turn
  end
end
return reply
