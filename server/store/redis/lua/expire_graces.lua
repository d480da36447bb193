-- KEYS: grace   ARGV: now, batch. Returns {entries claimed, records gone offline}.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local out = {}
for _, tail in ipairs(due) do
  redis.call('ZREM', KEYS[1], tail)
  local ukey = 'ph:user:' .. tail
  if redis.call('HGET', ukey, 'presence') == 'reconnecting'
      and redis.call('SCARD', 'ph:conns:' .. tail) == 0 then
    redis.call('HSET', ukey, 'presence', 'offline', 'since', ARGV[1])
    out[#out + 1] = redis.call('HGETALL', ukey)
  end
end
return {#due, out}
