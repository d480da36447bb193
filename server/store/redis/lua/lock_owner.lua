-- KEYS: lock   ARGV: now. The owner while the lock is held, else false.
local owner = redis.call('HGET', KEYS[1], 'owner')
if not owner or tonumber(redis.call('HGET', KEYS[1], 'until')) <= tonumber(ARGV[1]) then return false end
return owner
