-- Idempotency, step 3 (on failure): forget a pending claim, if this owner still holds it.
--
-- KEYS[1]  the record's hash (see idempotency_claim.lua)
-- ARGV[1]  owner token given to the claim
-- Returns  1 released, 0 not held by this owner (expired, claimed by another, or done)
local key = KEYS[1]
local record = redis.call('HMGET', key, 'st', 'o')
if record[1] ~= 'p' or record[2] ~= ARGV[1] then
  return 0
end
redis.call('DEL', key)
return 1
