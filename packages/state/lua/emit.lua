-- Shared prelude, prepended to every script that appends session events.
-- emit: appends one event to the session stream (its id is the eventId) and queues it for
-- publish(). Every script that emits calls publish() before it returns.
local published = {}
local function emit(stream, body, maxlen)
  local id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'e', body)
  published[#published + 1] = id
  published[#published + 1] = body
  return id
end
-- publish: sends the events emitted so far on the session's shard channel (SPUBLISH: on Redis
-- Cluster only the slot's shard carries it), in one message: `<eventId>\n<body>` per event, joined
-- by `\n` (bodies are JSON, so hold no newline). One message per script, not one per event:
-- a reply's deltas and its end cost one SPUBLISH.
local function publish(channel)
  if #published == 0 then return end
  redis.call('SPUBLISH', channel, table.concat(published, '\n'))
  published = {}
end
