-- KEYS: once   ARGV: now, until, px. The deadline is compared with `now`, not
-- Redis's clock (SET NX PX alone would make fake-clock tests lie); PX only
-- garbage-collects the key at about the same time.
local until_ = redis.call('GET', KEYS[1])
if until_ and tonumber(until_) > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
