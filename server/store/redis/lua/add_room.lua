-- KEYS: rooms, room, room index   ARGV: room_id, record JSON, event_id
if redis.call('SET', KEYS[2], ARGV[2], 'NX') then redis.call('RPUSH', KEYS[1], ARGV[1]) end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
return 1
