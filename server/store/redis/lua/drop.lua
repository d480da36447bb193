-- Shared by `disconnect` and `reap`: drop one socket of a user, the last one
-- gone makes an online user `reconnecting` with a grace deadline. A socket dropped while others
-- remain leaves its time in `left_at`: when the last one goes later but is dated earlier (a dead
-- node's, dated at that node's last renewal), the user was really there until the later of the two;
-- and never left before it came (1 ms after `since`, its going online, so the two never tie).
local function drop(ukey, ckey, grace, conn_id, now, deadline, tail)
  redis.call('SREM', ckey, conn_id)
  if redis.call('EXISTS', ukey) == 0 then return false end
  local left = redis.call('SCARD', ckey)
  local left_at = redis.call('HGET', ukey, 'left_at')
  if left == 0 and redis.call('HGET', ukey, 'presence') == 'online' then
    local since = now
    local came = string.format('%.17g', tonumber(redis.call('HGET', ukey, 'since')) + 0.001)
    for _, t in ipairs({left_at or now, came}) do
      if tonumber(t) > tonumber(since) then since = t end
    end
    redis.call('HSET', ukey, 'presence', 'reconnecting', 'since', since, 'connections', 0)
    redis.call('ZADD', grace, deadline, tail)
    return {1, redis.call('HGETALL', ukey)}
  end
  redis.call('HSET', ukey, 'connections', left)
  if not left_at or tonumber(left_at) < tonumber(now) then redis.call('HSET', ukey, 'left_at', now) end
  return {0, redis.call('HGETALL', ukey)}
end
