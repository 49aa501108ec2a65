-- Appends several session events, in order, on behalf of a lease holder (a group commit: the
-- events a worker queued while its previous append was in flight); a fenced-out worker appends none.
-- KEYS[1] lease  KEYS[2] events  KEYS[3] channel
-- ARGV[1] fencing token  ARGV[2] events maxlen  ARGV[3..] bodies (JSON), oldest first
-- Returns the eventIds in the same order, or false when the lease is no longer the caller's.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local ids = {}
for i = 3, #ARGV do
  ids[#ids + 1] = emit(KEYS[2], ARGV[i], ARGV[2])
end
publish(KEYS[3])
return ids
