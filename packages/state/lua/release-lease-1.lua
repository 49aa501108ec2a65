-- Gives the lease back (hand-over on shutdown or failure) if the caller still holds it.
-- KEYS[1] lease  ARGV[1] fencing token
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
