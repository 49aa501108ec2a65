-- Shared prelude, prepended to every script that appends session events.
-- emit: append one event to the session stream (its id is the eventId), then publish it on the
-- session's shard channel (SPUBLISH: on Redis Cluster only the slot's shard carries it).
local function emit(stream, channel, body, maxlen)
  local id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'e', body)
  redis.call('SPUBLISH', channel, id .. '\n' .. body)
  return id
end
