-- KEYS: record, due, pending, delivered, dead
-- ARGV: claim, outcome (delivered|retry|dead), at, status ('' for none), answer, next_at, keep, prefix
-- An attempt counts only under the claim in force: a sender whose lease ran out is ignored.
if redis.call('HGET', KEYS[1], 'claim') ~= ARGV[1] then return 0 end
local id = redis.call('HGET', KEYS[1], 'delivery_id')
local created = redis.call('HGET', KEYS[1], 'created_at')
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'last_at', ARGV[3], 'last_answer', ARGV[5])
if ARGV[4] == '' then
  redis.call('HDEL', KEYS[1], 'last_status', 'claim', 'claimed_until')
else
  redis.call('HSET', KEYS[1], 'last_status', ARGV[4])
  redis.call('HDEL', KEYS[1], 'claim', 'claimed_until')
end
if ARGV[2] == 'retry' then
  redis.call('HSET', KEYS[1], 'next_at', ARGV[6])
  redis.call('ZADD', KEYS[2], ARGV[6], id)
  return 1
end
redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)
if ARGV[2] == 'dead' then
  redis.call('HSET', KEYS[1], 'state', 'dead')
  redis.call('ZADD', KEYS[5], created, id)
  return 1
end
redis.call('HSET', KEYS[1], 'state', 'delivered', 'delivered_at', ARGV[3])
redis.call('ZADD', KEYS[4], created, id)
local over = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[7])
if over > 0 then
  for _, old in ipairs(redis.call('ZRANGE', KEYS[4], 0, over - 1)) do
    redis.call('DEL', ARGV[8] .. old)
  end
  redis.call('ZREMRANGEBYRANK', KEYS[4], 0, over - 1)
end
return 1
