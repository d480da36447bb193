-- KEYS: nodes, grace, renewed   ARGV: node, now, deadline. A node that stops hands its sockets back at once.
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return release(ARGV[1], KEYS[2], ARGV[2], ARGV[3])
