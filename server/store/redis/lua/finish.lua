-- KEYS: user, grace   ARGV: now, tail
local presence = redis.call('HGET', KEYS[1], 'presence')
if not presence then return false end
if presence == 'finished' then return {0, redis.call('HGETALL', KEYS[1])} end
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[1], 'presence', 'finished', 'since', ARGV[1])
return {1, redis.call('HGETALL', KEYS[1])}
