-- Shared prelude (with emit.lua).
-- take_token: takes one token from the bucket at `key` (hash: tokens, ts), which holds up to
-- `capacity` tokens and refills `rate` per ms. nil when taken, else the ms until one is there.
local function take_token(key, capacity, rate, now_ms)
  local now = tonumber(now_ms)
  local bucket = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(bucket[1]) or capacity
  tokens = math.min(capacity, tokens + math.max(0, now - (tonumber(bucket[2]) or now)) * rate)
  if tokens < 1 then
    return math.ceil((1 - tokens) / rate)
  end
  redis.call('HSET', key, 'tokens', tostring(tokens - 1), 'ts', now_ms)
  redis.call('PEXPIRE', key, math.ceil(capacity / rate) + 1000)
  return nil
end
