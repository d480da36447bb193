-- KEYS: nodes, grace, renewed   ARGV: now, deadline. Claims one dead node: {node, records} or {}.
-- Its users left when it died, not when it was found dead: their drops are dated at its last renewal.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)
if #due == 0 then return {} end
local node = due[1]
redis.call('ZREM', KEYS[1], node)
local renewed = redis.call('HGET', KEYS[3], node) or ARGV[1]
redis.call('HDEL', KEYS[3], node)
return {node, release(node, KEYS[2], renewed, ARGV[2])}
