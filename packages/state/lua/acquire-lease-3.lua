-- Takes the session's processing lease if it is free and a message waits.
-- KEYS[1] lease  KEYS[2] fence  KEYS[3] inbox
-- ARGV[1] lease ttl (ms)
-- Returns the fencing token, or false when the lease is held or nothing waits.
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
if redis.call('LLEN', KEYS[3]) == 0 then return false end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], fence, 'PX', ARGV[1])
return fence
