-- KEYS: eusers   ARGV: event_id. Needs keys.lua before it.
-- The event's users by role and presence, counted here: role, presence, count, role, presence, ...
-- (/metrics' figures without sending every user's record to the node to decode.)
local counts = {}
local prefix = 'ph:user:' .. esc(ARGV[1]) .. ':'
for _, user in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local row = redis.call('HMGET', prefix .. esc(user), 'role', 'presence')
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
