-- Stores a chat message once per (session, id), logs `user.message`, and queues it in the inbox.
-- KEYS[1] messages  KEYS[2] inbox  KEYS[3] events  KEYS[4] channel
-- KEYS[5] meta      KEYS[6] history  KEYS[7] fence
-- ARGV[1] chat id  ARGV[2] user.message body (JSON)  ARGV[3] text  ARGV[4] ts
-- ARGV[5] events maxlen  ARGV[6] session ttl (s)
-- Returns {'duplicate'|'accepted', record JSON}
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then
  return {'duplicate', existing}
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
