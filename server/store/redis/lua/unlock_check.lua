-- KEYS: due, lock   ARGV: member, at ('' for none), owner
-- A timeline check's last two writes in one round trip: its next check (ZADD LT: an earlier request
-- wins), then its lock let go if `owner` still holds it (as release_lock.lua).
if ARGV[2] ~= '' then redis.call('ZADD', KEYS[1], 'LT', ARGV[2], ARGV[1]) end
if redis.call('HGET', KEYS[2], 'owner') == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1
