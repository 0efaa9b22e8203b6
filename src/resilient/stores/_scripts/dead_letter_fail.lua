-- Keep a dead letter whose replay failed: record the failure and park it again.
--
-- KEYS[1]  the stream
-- KEYS[2]  the hash of failure records
-- ARGV[1]  the consumer group
-- ARGV[2]  the entry id
-- ARGV[3]  the consumer that holds failed entries until the next replay
-- ARGV[4]  the failure record (JSON: attempts, error type, message, traceback, time)
--
-- Reply: 1 when the entry was kept, 0 when it was gone (purged meanwhile).
--
-- The entry stays pending in the consumer group, moved to the consumer ARGV[3], so no later
-- XREADGROUP ... > hands it out again; the next replay reads that consumer's pending entries.
if #redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2]) == 0 then
  redis.call('HDEL', KEYS[2], ARGV[2])
  redis.pcall('XACK', KEYS[1], ARGV[1], ARGV[2])
  return 0
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
redis.pcall('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[2])
return 1
