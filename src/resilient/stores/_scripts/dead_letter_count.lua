-- Count parked dead letters.
--
-- KEYS[1]  the stream
--
-- Reply: the number of entries (integer).
return redis.call('XLEN', KEYS[1])
