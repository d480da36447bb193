-- KEYS: user, conns, nconns, eusers, grace
-- ARGV: conn_id, ref, event_id, user_id, role, has_name, name, now, tail
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[4])
local presence = redis.call('HGET', KEYS[1], 'presence')
if not presence then
  presence = 'offline'
  redis.call('HSET', KEYS[1], 'event_id', ARGV[3], 'user_id', ARGV[4], 'presence', presence,
             'since', ARGV[8], 'video', 'unknown', 'flags', 0,
             'recording', 'unknown', 'open_alerts', 0)
end
redis.call('HSET', KEYS[1], 'role', ARGV[5], 'connections', redis.call('SCARD', KEYS[2]))
if ARGV[6] == '1' then redis.call('HSET', KEYS[1], 'name', ARGV[7]) end
local changed = 0
if presence == 'offline' or presence == 'reconnecting' then
  changed = 1
  redis.call('HSET', KEYS[1], 'presence', 'online', 'since', ARGV[8])
  redis.call('ZREM', KEYS[5], ARGV[9])
end
return {changed, redis.call('HGETALL', KEYS[1])}
