-- KEYS: the user's socket set (ph:conns:{tail})   ARGV: node channel prefix, payload
-- A socket id is `{node}/{n}`: the message goes once to the channel of every node holding one.
local sent = {}
local count = 0
for _, conn in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local node = string.match(conn, '^(.*)/[^/]*$')
  if node and not sent[node] then
    sent[node] = true
    count = count + 1
    redis.call('PUBLISH', ARGV[1] .. node, ARGV[2])
  end
end
return count
