-- Idempotency: read a record without changing it (inspection and tests).
--
-- KEYS[1]  the record's hash (see idempotency_claim.lua)
-- Returns  {} when absent, else {state ("p" | "d"), fingerprint, result or "", pttl (ms)}
local key = KEYS[1]
local record = redis.call('HMGET', key, 'st', 'f', 'r')
if not record[1] then
  return {}
end
return {record[1], record[2], record[3] or '', redis.call('PTTL', key)}
