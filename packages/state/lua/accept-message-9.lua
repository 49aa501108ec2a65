-- Stores a chat message once per (session, id), logs `user.message`, and queues it in the inbox,
-- unless the session's token bucket is empty (a resend of a stored message never costs a token).
-- Also says whether the message needs a job: not while a worker holds the session's lease, since
-- the holder answers the inbox until it is empty and only then lets go (in the same step as its
-- last answer). Otherwise the job's deduplication key is the session's fence counter: one job per
-- session until a worker takes the lease, whichever gateway queues it.
-- KEYS[1] messages  KEYS[2] inbox  KEYS[3] events  KEYS[4] channel
-- KEYS[5] meta      KEYS[6] history  KEYS[7] fence  KEYS[8] rate bucket  KEYS[9] lease
-- ARGV[1] chat id  ARGV[2] user.message body (JSON)  ARGV[3] text  ARGV[4] now (ms)
-- ARGV[5] events maxlen  ARGV[6] session ttl (s)
-- ARGV[7] bucket capacity (0 = no limit)  ARGV[8] refill (tokens per ms)
-- Returns {'duplicate'|'accepted', record JSON, job key ('' for no job)}
--   or {'rate_limited', retry after (ms)}
local function job_key()
  if redis.call('EXISTS', KEYS[9]) == 1 then return '' end
  return redis.call('GET', KEYS[7]) or '0'
end
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then
  if cjson.decode(existing).state == 'done' then return {'duplicate', existing, ''} end
  return {'duplicate', existing, job_key()}
end
local capacity = tonumber(ARGV[7])
if capacity > 0 then
  local wait = take_token(KEYS[8], capacity, tonumber(ARGV[8]), ARGV[4])
  if wait then return {'rate_limited', tostring(wait)} end
end
local eventId = emit(KEYS[3], ARGV[2], ARGV[5])
publish(KEYS[4])
local record = cjson.encode({ eventId = eventId, text = ARGV[3], ts = tonumber(ARGV[4]), state = 'pending' })
redis.call('HSET', KEYS[1], ARGV[1], record)
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[5], 'lastSeen', ARGV[4])
for i = 1, 7 do
  if i ~= 4 then redis.call('EXPIRE', KEYS[i], ARGV[6]) end
end
return {'accepted', record, job_key()}
