-- KEYS: nodes, grace   ARGV: now, deadline. Claims one dead node: {node, records} or {}.
local function esc(s)
  return (string.gsub((string.gsub(s, '%%', '%%25')), ':', '%%3A'))
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1)
if #due == 0 then return {} end
local node = due[1]
redis.call('ZREM', KEYS[1], node)
local nkey = 'ph:nconns:' .. node
local refs = redis.call('SMEMBERS', nkey)
redis.call('DEL', nkey)
local out = {}
for _, raw in ipairs(refs) do
  local ref = cjson.decode(raw)
  local tail = esc(ref.event_id) .. ':' .. esc(ref.user_id)
  local moved = drop('ph:user:' .. tail, 'ph:conns:' .. tail, KEYS[2], ref.conn_id,
                     ARGV[1], ARGV[2], tail)
  if moved and moved[1] == 1 then out[#out + 1] = moved[2] end
end
return {node, out}
