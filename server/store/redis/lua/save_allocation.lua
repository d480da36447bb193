-- KEYS: fence, room meta hash, shortage
-- ARGV: fence, members prefix, user prefix, shortage mode ('keep' | 'set' | 'del'), shortage JSON,
--       #rooms, (room, meta JSON)..., #seat, (cand, cand escaped, room, room escaped)...,
--       #unseat, (cand, room escaped)...
-- Nothing is written unless the fence is still the one the writer was issued. Returns the user hashes
-- of the seated candidates (flat lists), so the writer announces what the store now holds.
if tonumber(redis.call('GET', KEYS[1]) or '0') ~= tonumber(ARGV[1]) then return false end
if ARGV[4] == 'set' then redis.call('SET', KEYS[3], ARGV[5])
elseif ARGV[4] == 'del' then redis.call('DEL', KEYS[3]) end
local i = 7
for _ = 1, tonumber(ARGV[6]) do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  i = i + 2
end
local seated = {}
local count = tonumber(ARGV[i])
i = i + 1
for _ = 1, count do
  redis.call('SADD', ARGV[2] .. ARGV[i + 3], ARGV[i])
  local ukey = ARGV[3] .. ARGV[i + 1]
  if redis.call('EXISTS', ukey) == 1 then
    redis.call('HSET', ukey, 'room_id', ARGV[i + 2])
    seated[#seated + 1] = redis.call('HGETALL', ukey)
  end
  i = i + 4
end
count = tonumber(ARGV[i])
i = i + 1
for _ = 1, count do
  redis.call('SREM', ARGV[2] .. ARGV[i + 1], ARGV[i])
  i = i + 2
end
return seated
