-- KEYS: token   ARGV: new JSON, replaces jti ('' = none), ttl ms
local held = redis.call('GET', KEYS[1])
if held then
  local jti = cjson.decode(held).jti
  if jti ~= ARGV[2] then return held end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return ARGV[1]
