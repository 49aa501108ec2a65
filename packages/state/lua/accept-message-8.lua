-- Stores a chat message once per (session, id), logs `user.message`, and queues it in the inbox,
-- unless the session's token bucket is empty (a resend of a stored message never costs a token).
-- KEYS[1] messages  KEYS[2] inbox  KEYS[3] events  KEYS[4] channel
-- KEYS[5] meta      KEYS[6] history  KEYS[7] fence  KEYS[8] rate bucket
-- ARGV[1] chat id  ARGV[2] user.message body (JSON)  ARGV[3] text  ARGV[4] now (ms)
-- ARGV[5] events maxlen  ARGV[6] session ttl (s)
-- ARGV[7] bucket capacity (0 = no limit)  ARGV[8] refill (tokens per ms)
-- Returns {'duplicate'|'accepted', record JSON} or {'rate_limited', retry after (ms)}
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then
  return {'duplicate', existing}
end
local capacity = tonumber(ARGV[7])
if capacity > 0 then
  local now, rate = tonumber(ARGV[4]), tonumber(ARGV[8])
  local bucket = redis.call('HMGET', KEYS[8], 'tokens', 'ts')
  local tokens = tonumber(bucket[1]) or capacity
  local since = math.max(0, now - (tonumber(bucket[2]) or now))
  tokens = math.min(capacity, tokens + since * rate)
  if tokens < 1 then
    return {'rate_limited', tostring(math.ceil((1 - tokens) / rate))}
  end
  redis.call('HSET', KEYS[8], 'tokens', tostring(tokens - 1), 'ts', ARGV[4])
  redis.call('PEXPIRE', KEYS[8], math.ceil(capacity / rate) + 1000)
end
local eventId = emit(KEYS[3], KEYS[4], ARGV[2], ARGV[5])
local record = cjson.encode({ eventId = eventId, text = ARGV[3], ts = tonumber(ARGV[4]), state = 'pending' })
redis.call('HSET', KEYS[1], ARGV[1], record)
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[5], 'lastSeen', ARGV[4])
for i = 1, 7 do
  if i ~= 4 then redis.call('EXPIRE', KEYS[i], ARGV[6]) end
end
return {'accepted', record}
