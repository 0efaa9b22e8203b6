-- Idempotency, step 1: claim a key, or report what holds it. One hash per key (one Cluster
-- slot, one TTL): st "p" (pending) or "d" (done), o owner token, f fingerprint, r result.
-- A pending record expires with its lease (PEXPIRE), so an abandoned claim frees itself.
--
-- KEYS[1]  the record's hash
-- ARGV[1]  owner token (a random string)
-- ARGV[2]  fingerprint of the call (a string)
-- ARGV[3]  lease (integer milliseconds)
-- Returns  {0} claimed by this owner
--          {1, result} done with the same fingerprint: the stored result (a string)
--          {2, pttl} pending with the same fingerprint: milliseconds left on the lease
--          {3} the key was claimed with another fingerprint
local key = KEYS[1]
local record = redis.call('HMGET', key, 'st', 'f', 'r')
if not record[1] then
  redis.call('HSET', key, 'st', 'p', 'o', ARGV[1], 'f', ARGV[2])
  redis.call('PEXPIRE', key, ARGV[3])
  return {0}
end
if record[2] ~= ARGV[2] then
  return {3}
end
if record[1] == 'd' then
  return {1, record[3]}
end
local left = redis.call('PTTL', key)
if left < 0 then
  left = 0
end
return {2, left}
