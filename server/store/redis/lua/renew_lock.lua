-- KEYS: lock   ARGV: owner, now, until, ttl ms
-- Push the deadline of a lock this owner still holds (no new fence: the holder's writes stay valid).
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'until')) <= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'until', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
