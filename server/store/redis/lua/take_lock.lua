-- Shared: take the lock (a hash: owner, until) for `owner` unless another holds it past `now`;
-- its new fencing token, or false. The deadline is compared with the caller's `now` (stores never
-- read a clock); PEXPIRE only cleans up.
local function take_lock(lock, fence, owner, now, deadline, ttl_ms)
  local holder = redis.call('HGET', lock, 'owner')
  if holder and holder ~= owner and tonumber(redis.call('HGET', lock, 'until')) > tonumber(now) then
    return false
  end
  redis.call('HSET', lock, 'owner', owner, 'until', deadline)
  redis.call('PEXPIRE', lock, ttl_ms)
  return redis.call('INCR', fence)
end
