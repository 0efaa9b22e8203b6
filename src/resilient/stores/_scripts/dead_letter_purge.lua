-- Delete every parked dead letter, the consumer group and the failure records.
--
-- KEYS[1]  the stream
-- KEYS[2]  the hash of failure records
--
-- Reply: the number of entries deleted (integer).
local length = redis.call('XLEN', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
return length
