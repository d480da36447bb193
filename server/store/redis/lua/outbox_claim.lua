-- KEYS: due   ARGV: now, until, limit, owner, record key prefix
-- Each due delivery goes to one caller; its due time moves to the lease's end, so the claim of a
-- sender that died comes due again by itself. Returns the claimed records (HGETALL each).
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  local key = ARGV[5] .. id
  if redis.call('HGET', key, 'state') == 'pending' then
    local n = redis.call('HINCRBY', key, 'claims', 1)
    redis.call('HSET', key, 'claim', ARGV[4] .. '/' .. n, 'claimed_until', ARGV[2])
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    out[#out + 1] = redis.call('HGETALL', key)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
