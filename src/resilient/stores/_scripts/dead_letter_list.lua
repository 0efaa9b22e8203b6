-- Read parked dead letters, oldest first, with the record of their last replay failure.
--
-- KEYS[1]  the stream
-- KEYS[2]  the hash of failure records
-- ARGV[1]  the first id to read ("-" for the oldest)
-- ARGV[2]  the most entries to read (integer >= 1)
--
-- Reply: {{id, {field, value, ...}, failure or false}, ...}
local result = {}
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])) do
  result[#result + 1] = {entry[1], entry[2], redis.call('HGET', KEYS[2], entry[1])}
end
return result
