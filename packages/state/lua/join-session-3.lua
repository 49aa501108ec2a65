-- A socket joins its session, in one step: records the session if new (ensure), registers the
-- socket in the session-to-socket map, says whether the session is over its socket cap, and
-- (for a client that resumes) reads the first page of its replay.
-- KEYS[1] meta  KEYS[2] sockets  KEYS[3] events
-- ARGV[1] now (ms)  ARGV[2] TTL (s)  ARGV[3] connectionId  ARGV[4] gatewayId
-- ARGV[5] most sockets per session (0 = no cap)  ARGV[6] lastEventId ('' = no replay)
-- ARGV[7] replay page size
-- Returns {existed (0/1), sockets, reset (0/1), page}:
--   sockets: the whole map as a flat {connectionId, value, ...} when it holds more than the cap
--            (the caller drops sockets of dead gateways and picks the oldest), else {}
--   reset:   1 when lastEventId is older than every retained event (or none is retained)
--   page:    flat {eventId, body, ...}: the events after lastEventId (all retained ones on a
--            reset), oldest first, at most the page size
local created = redis.call('HSETNX', KEYS[1], 'created', ARGV[1])
redis.call('HSET', KEYS[1], 'lastSeen', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
-- The socket's age by Redis's clock (µs), not the gateway's: replicas' clocks may disagree.
local time = redis.call('TIME')
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4] .. '|' .. time[1] .. string.format('%06d', time[2]))
redis.call('EXPIRE', KEYS[2], ARGV[2])

local sockets = {}
local most = tonumber(ARGV[5])
if most > 0 and redis.call('HLEN', KEYS[2]) > most then
  sockets = redis.call('HGETALL', KEYS[2])
end

local reset, page = 0, {}
if ARGV[6] ~= '' then
  local from = '(' .. ARGV[6]
  -- No retained event at or before lastEventId: it was trimmed (or the log is empty).
  if #redis.call('XRANGE', KEYS[3], '-', ARGV[6], 'COUNT', 1) == 0 then
    reset, from = 1, '-'
  end
  for _, entry in ipairs(redis.call('XRANGE', KEYS[3], from, '+', 'COUNT', ARGV[7])) do
    page[#page + 1] = entry[1]
    page[#page + 1] = entry[2][2] or '{}'
  end
end
return {1 - created, sockets, reset, page}
