-- KEYS: nodes, grace   ARGV: now, deadline. Claims one dead node: {node, records} or {}.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)
if #due == 0 then return {} end
local node = due[1]
redis.call('ZREM', KEYS[1], node)
return {node, release(node, KEYS[2], ARGV[1], ARGV[2])}
