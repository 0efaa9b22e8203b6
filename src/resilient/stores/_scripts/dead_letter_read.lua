-- Hand a batch of dead letters to one replaying consumer of the stream's consumer group.
--
-- KEYS[1]  the stream
-- KEYS[2]  the hash of failure records (entry id -> JSON of the last replay failure)
-- ARGV[1]  the consumer group
-- ARGV[2]  this consumer (unique per replay run)
-- ARGV[3]  the most entries to hand over (integer >= 1)
-- ARGV[4]  the phase:
--          "parked"  entries whose replay failed, pending under the consumer ARGV[7]: read
--                    from that consumer's history after the id ARGV[5] and claimed for ARGV[2];
--          "claim"   entries left pending by a consumer that died, idle for at least ARGV[6]
--                    milliseconds: XAUTOCLAIM from the cursor ARGV[5];
--          "new"     entries never handed to any consumer: XREADGROUP ... >.
-- ARGV[5]  the cursor of the phase ("0-0" to start)
-- ARGV[6]  the idle time in milliseconds before a pending entry may be claimed (integer)
-- ARGV[7]  the consumer holding the entries whose replay failed
--
-- Reply: {cursor, {id, {field, value, ...}, failure or false}, ...}; cursor "0-0" means the
-- phase has nothing more.
--
-- The group is created at id 0 (so entries parked before it existed are delivered), with
-- MKSTREAM; BUSYGROUP (it exists) is the normal case. After a flush the group is gone: it is
-- made again here, so no caller spins on NOGROUP. Claiming raises an entry's delivery count.
local stream, failures = KEYS[1], KEYS[2]
local group, consumer, count, phase = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]

local created = redis.pcall('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
if type(created) == 'table' and created.err and not string.find(created.err, 'BUSYGROUP', 1, true) then
  return redis.error_reply(created.err)
end

local entries, cursor = {}, '0-0'
if phase == 'new' then
  local reply = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count, 'STREAMS', stream, '>')
  if reply and reply[1] then
    entries = reply[1][2]
  end
  if #entries == count then
    cursor = '>'
  end
elseif phase == 'claim' then
  local reply = redis.call('XAUTOCLAIM', stream, group, consumer, ARGV[6], ARGV[5], 'COUNT', count)
  -- Redis 6.2 replies {cursor, entries} with nil for deleted entries; 7.0+ adds a third
  -- element, the deleted ids (already dropped from the pending list): only the first two count.
  cursor, entries = reply[1], reply[2]
elseif phase == 'parked' then
  local reply = redis.call('XREADGROUP', 'GROUP', group, ARGV[7], 'COUNT', count, 'STREAMS', stream, ARGV[5])
  if reply and reply[1] then
    entries = reply[1][2]
  end
  if #entries == count then
    cursor = entries[#entries][1]
  end
  for _, entry in ipairs(entries) do
    if entry[2] then
      redis.call('XCLAIM', stream, group, consumer, 0, entry[1])
    end
  end
else
  return redis.error_reply('unknown phase ' .. tostring(phase))
end

local result = {cursor}
for _, entry in ipairs(entries) do
  if entry and entry[2] then
    result[#result + 1] = {entry[1], entry[2], redis.call('HGET', failures, entry[1])}
  elseif entry then
    -- Deleted while pending (a purge): nothing to replay, nothing to keep pending.
    redis.call('XACK', stream, group, entry[1])
  end
end
return result
