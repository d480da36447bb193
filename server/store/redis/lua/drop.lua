-- Shared by `disconnect` and `reap`: drop one socket of a user, the last one
-- gone makes an online user `reconnecting` with a grace deadline.
local function drop(ukey, ckey, grace, conn_id, now, deadline, tail)
  redis.call('SREM', ckey, conn_id)
  if redis.call('EXISTS', ukey) == 0 then return false end
  local left = redis.call('SCARD', ckey)
  if left == 0 and redis.call('HGET', ukey, 'presence') == 'online' then
    redis.call('HSET', ukey, 'presence', 'reconnecting', 'since', now, 'connections', 0)
    redis.call('ZADD', grace, deadline, tail)
    return {1, redis.call('HGETALL', ukey)}
  end
  redis.call('HSET', ukey, 'connections', left)
  return {0, redis.call('HGETALL', ukey)}
end
