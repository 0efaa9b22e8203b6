-- Park one dead letter at the end of a stream, unless the stream is full.
--
-- KEYS[1]  the stream
-- ARGV[1]  max_length: the most entries the stream may hold (integer)
-- ARGV[2…] the entry's fields: name, value, name, value, ...
--
-- Reply: {1, id} when the entry was added, {0, length} when the stream already holds
-- max_length entries (nothing is added).
--
-- The length check and the XADD run in one script, and there is never a MAXLEN: trimming would
-- drop the oldest dead letters silently, where a full queue must refuse new ones. Dead letters
-- have no TTL: they stay until replayed or purged.
local length = redis.call('XLEN', KEYS[1])
if length >= tonumber(ARGV[1]) then
  return {0, length}
end
return {1, redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))}
