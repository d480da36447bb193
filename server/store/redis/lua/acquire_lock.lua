-- KEYS: lock (a hash: owner, until), fence   ARGV: owner, now, until, ttl ms
-- The deadline is compared with the caller's `now` (stores never read a clock); PX only cleans up.
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= ARGV[1] and tonumber(redis.call('HGET', KEYS[1], 'until')) > tonumber(ARGV[2]) then
  return false
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'until', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return redis.call('INCR', KEYS[2])
