-- Remove a dead letter whose replay succeeded: acknowledge it and delete it, in one step.
--
-- KEYS[1]  the stream
-- KEYS[2]  the hash of failure records
-- ARGV[1]  the consumer group
-- ARGV[2]  the entry id
--
-- Reply: 1 when the entry was deleted, 0 when it was already gone (purged, or removed by
-- another replay that took it over). XACKDEL would do both but needs Redis 8.2.
redis.pcall('XACK', KEYS[1], ARGV[1], ARGV[2])  -- NOGROUP after a flush: nothing is pending
redis.call('HDEL', KEYS[2], ARGV[2])
return redis.call('XDEL', KEYS[1], ARGV[2])
