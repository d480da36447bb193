-- KEYS: the keys written   ARGV: seconds to keep them, then one group per write:
-- key index (1-based into KEYS), command, argument count, the arguments. Every key written is
-- kept ARGV[1] seconds from now. One script instead of MULTI ... EXEC: it travels in the node's
-- per-turn batch, and is as atomic.
local ttl = ARGV[1]
local replies = {}
local i = 2
while i <= #ARGV do
  local key = KEYS[tonumber(ARGV[i])]
  local count = tonumber(ARGV[i + 2])
  replies[#replies + 1] = redis.call(ARGV[i + 1], key, unpack(ARGV, i + 3, i + 2 + count))
  i = i + 3 + count
end
for _, key in ipairs(KEYS) do
  redis.call('EXPIRE', key, ttl)
end
return replies
