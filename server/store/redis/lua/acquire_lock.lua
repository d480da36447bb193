-- KEYS: lock, fence   ARGV: owner, now, until, ttl ms   (loaded after take_lock.lua)
return take_lock(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
