-- KEYS: none   ARGV: event_id, user_id, user_id, ... Needs keys.lua before it.
-- These users of the event by role and presence, counted here: role, presence, count, ... (/metrics'
-- figures without sending every record to the node to decode). The node sends the ids in slices, so
-- no one call holds Redis for long.
local counts = {}
local prefix = 'ph:user:' .. esc(ARGV[1]) .. ':'
for i = 2, #ARGV do
  local row = redis.call('HMGET', prefix .. esc(ARGV[i]), 'role', 'presence')
  if row[1] and row[2] then
    local key = row[1] .. '\n' .. row[2]
    counts[key] = (counts[key] or 0) + 1
  end
end
local out = {}
for key, n in pairs(counts) do
  local cut = string.find(key, '\n', 1, true)
  out[#out + 1] = string.sub(key, 1, cut - 1)
  out[#out + 1] = string.sub(key, cut + 1)
  out[#out + 1] = n
end
return out
