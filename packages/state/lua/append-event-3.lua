-- Appends a session event on behalf of a lease holder; a fenced-out worker cannot publish.
-- KEYS[1] lease  KEYS[2] events  KEYS[3] channel
-- ARGV[1] fencing token  ARGV[2] body (JSON)  ARGV[3] events maxlen
-- Returns the eventId, or false when the lease is no longer the caller's.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
return emit(KEYS[2], KEYS[3], ARGV[2], ARGV[3])
