-- KEYS: the user's socket set (ph:conns:{tail})   ARGV: node channel prefix, payload, this node
-- A socket id is `{node}/{n}`: the message goes once to the channel of every other node holding one.
-- Returns {nodes holding one, 1 if this node is one of them}: the caller delivers its own share
-- without a round trip through pub/sub.
local sent = {}
local count = 0
local here = 0
for _, conn in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local node = string.match(conn, '^(.*)/[^/]*$')
  if node and not sent[node] then
    sent[node] = true
    count = count + 1
    if node == ARGV[3] then
      here = 1
    else
      redis.call('PUBLISH', ARGV[1] .. node, ARGV[2])
    end
  end
end
return {count, here}
