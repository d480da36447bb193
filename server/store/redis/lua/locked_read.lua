-- KEYS: lock, fence, signals, alerts, user, backfill requests   ARGV: owner, now, until, ttl ms
-- (after take_lock.lua)
-- A timeline check's lock and reads in one round trip: {fence, signals, alerts, user, backfill
-- requests}, or false (and nothing read) while another owner holds the lock.
local fence = take_lock(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
if not fence then
  return false
end
return {
  fence,
  redis.call('SMEMBERS', KEYS[3]),
  redis.call('HGETALL', KEYS[4]),
  redis.call('HGETALL', KEYS[5]),
  redis.call('HGETALL', KEYS[6]),
}
