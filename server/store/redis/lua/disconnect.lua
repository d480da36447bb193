-- KEYS: user, conns, nconns, grace   ARGV: conn_id, ref, now, deadline, tail
redis.call('SREM', KEYS[3], ARGV[2])
return drop(KEYS[1], KEYS[2], KEYS[4], ARGV[1], ARGV[3], ARGV[4], ARGV[5])
