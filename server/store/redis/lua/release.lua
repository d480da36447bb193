-- release(node, grace key, now, deadline): drop every socket the node held (its users with no socket
-- left go `reconnecting` until the deadline); the records that changed. Needs keys.lua and drop.lua
-- before it.
local function release(node, grace, now, deadline)
  local nkey = 'ph:nconns:' .. node
  local refs = redis.call('SMEMBERS', nkey)
  redis.call('DEL', nkey)
  local out = {}
  for _, raw in ipairs(refs) do
    local ref = cjson.decode(raw)
    local tail = esc(ref.event_id) .. ':' .. esc(ref.user_id)
    local moved = drop('ph:user:' .. tail, 'ph:conns:' .. tail, grace, ref.conn_id, now, deadline, tail)
    if moved and moved[1] == 1 then out[#out + 1] = moved[2] end
  end
  return out
end
