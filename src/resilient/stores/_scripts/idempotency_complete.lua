-- Idempotency, step 2: store the result, a compare-and-set on the owner token. A lease that
-- ran out (the record expired, or another owner claimed it since) is left untouched.
--
-- KEYS[1]  the record's hash (see idempotency_claim.lua)
-- ARGV[1]  owner token given to the claim
-- ARGV[2]  the result (a string)
-- ARGV[3]  TTL of the result (integer milliseconds)
-- Returns  1 stored, 0 the lease was lost (nothing written)
local key = KEYS[1]
local record = redis.call('HMGET', key, 'st', 'o')
if record[1] ~= 'p' or record[2] ~= ARGV[1] then
  return 0
end
redis.call('HSET', key, 'st', 'd', 'r', ARGV[2])
redis.call('HDEL', key, 'o')
redis.call('PEXPIRE', key, ARGV[3])
return 1
