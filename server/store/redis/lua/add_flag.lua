-- KEYS: user, flags   ARGV: flag
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'flags', redis.call('RPUSH', KEYS[2], ARGV[1]))
return redis.call('HGETALL', KEYS[1])
