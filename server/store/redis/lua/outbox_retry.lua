-- KEYS: record, due, pending, delivered, dead   ARGV: now
-- Pending and due now, its retry window starting again; refused while a sender's lease lasts.
if redis.call('EXISTS', KEYS[1]) == 0 then return 'unknown' end
local until_ = redis.call('HGET', KEYS[1], 'claimed_until')
if until_ and tonumber(until_) > tonumber(ARGV[1]) then return 'sending' end
local id = redis.call('HGET', KEYS[1], 'delivery_id')
local created = redis.call('HGET', KEYS[1], 'created_at')
redis.call('HSET', KEYS[1], 'state', 'pending', 'next_at', ARGV[1], 'window_from', ARGV[1])
redis.call('HDEL', KEYS[1], 'claim', 'claimed_until')
redis.call('ZREM', KEYS[4], id)
redis.call('ZREM', KEYS[5], id)
redis.call('ZADD', KEYS[3], created, id)
redis.call('ZADD', KEYS[2], ARGV[1], id)
return 'queued'
