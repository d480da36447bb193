-- KEYS: user   ARGV: field, value, field, value, ...
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local changed = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) ~= ARGV[i + 1] then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    changed = 1
  end
end
return {changed, redis.call('HGETALL', KEYS[1])}
