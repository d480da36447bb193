-- KEYS: fence, doc
-- ARGV: fence, doc, members prefix, user prefix,
--       #seat, (cand, cand escaped, room, room escaped)..., #unseat, (cand, room escaped)...
if tonumber(redis.call('GET', KEYS[1]) or '0') ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
local i = 6
for _ = 1, tonumber(ARGV[5]) do
  redis.call('SADD', ARGV[3] .. ARGV[i + 3], ARGV[i])
  local ukey = ARGV[4] .. ARGV[i + 1]
  if redis.call('EXISTS', ukey) == 1 then redis.call('HSET', ukey, 'room_id', ARGV[i + 2]) end
  i = i + 4
end
local unseat = tonumber(ARGV[i])
i = i + 1
for _ = 1, unseat do
  redis.call('SREM', ARGV[3] .. ARGV[i + 1], ARGV[i])
  i = i + 2
end
return 1
