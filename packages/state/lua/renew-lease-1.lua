-- Extends the lease while its holder still owns it.
-- KEYS[1] lease  ARGV[1] fencing token  ARGV[2] ttl (ms)
-- Returns 1 when renewed, 0 when the lease was lost.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
