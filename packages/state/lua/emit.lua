-- Shared prelude, prepended to every script that appends session events.
-- emit: append one event to the session stream (its id is the eventId), then publish it.
local function emit(stream, channel, body, maxlen)
  local id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'e', body)
  redis.call('PUBLISH', channel, id .. '\n' .. body)
  return id
end
