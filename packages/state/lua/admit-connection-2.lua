-- Admits a new connection from one client address: its connect rate (a token bucket) and its
-- connections open on live gateways, shared by every replica.
-- KEYS[1] rate bucket  KEYS[2] open connections (hash: gateway instance -> count)
-- ARGV[1] now (ms)  ARGV[2] bucket capacity (0 = no rate limit)  ARGV[3] refill (tokens per ms)
-- ARGV[4] most open connections (0 = no limit)  ARGV[5] this gateway instance
-- ARGV[6..] live gateway instances (whose counts are current)
-- Returns {'ok'} or {'rate', retry after (ms)} or {'concurrent'}
local capacity = tonumber(ARGV[2])
if capacity > 0 then
  local wait = take_token(KEYS[1], capacity, tonumber(ARGV[3]), ARGV[1])
  if wait then return {'rate', tostring(wait)} end
end
local most = tonumber(ARGV[4])
if most > 0 then
  local open = 0
  for i = 6, #ARGV do
    open = open + (tonumber(redis.call('HGET', KEYS[2], ARGV[i])) or 0)
  end
  if open >= most then return {'concurrent'} end
end
redis.call('HINCRBY', KEYS[2], ARGV[5], 1)
redis.call('EXPIRE', KEYS[2], 86400)
return {'ok'}
