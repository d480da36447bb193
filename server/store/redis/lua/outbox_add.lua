-- KEYS: record, due, index of its state   ARGV: id, created_at, next_at, field, value, field, value...
-- A delivery already stored (the same fact reported twice) is left as it is: 0.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
if redis.call('HGET', KEYS[1], 'state') == 'pending' then redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1]) end
return 1
