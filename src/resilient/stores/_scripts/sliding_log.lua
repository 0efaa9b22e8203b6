-- Sliding window log (SlidingWindow, precise=True): one decision, the same formulas as
-- resilient._rate_limit.sliding_log. A unit granted at t counts while now - window < t.
-- KEYS[1]  a list of timestamps of granted units, newest first, at most `limit` long
-- ARGV     window, limit, cost [, now]  (integers; microseconds)
--          `now` is for tests only: without it the time is Redis's own (TIME).
-- Returns  {allowed (0|1), remaining, retry_after, reset_after}, integers (microseconds): an
--          array of integer replies, which a client parses without any string work.
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])

local now = tonumber(ARGV[4])
if now == nil then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end

local entries = redis.call('LRANGE', KEYS[1], 0, limit - 1)
local horizon = now - window
local count = 0
for i = 1, #entries do
  if tonumber(entries[i]) <= horizon then
    break
  end
  count = i
end
if count + cost <= limit then
  local stamp = string.format('%d', now)
  local chunk = {}
  for i = 1, math.min(cost, 1000) do
    chunk[i] = stamp
  end
  local todo = cost
  while todo > 0 do
    local n = math.min(todo, 1000)
    redis.call('LPUSH', KEYS[1], unpack(chunk, 1, n))
    todo = todo - n
  end
  redis.call('LTRIM', KEYS[1], 0, count + cost - 1)
  redis.call('PEXPIRE', KEYS[1], string.format('%d', math.ceil(window / 1000) + 1000))
  return {1, limit - count - cost, 0, window}
end
-- The (limit - cost + 1)-th newest timestamp must leave the window first.
local retry_after = tonumber(entries[limit - cost + 1]) + window - now
return {0, limit - count, retry_after, tonumber(entries[1]) + window - now}
