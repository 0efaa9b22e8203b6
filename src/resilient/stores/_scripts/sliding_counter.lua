-- Sliding window counter (SlidingWindow, precise=False): one decision, the same formulas as
-- resilient._rate_limit.sliding_counter, in the same order (Lua numbers are doubles, as
-- Python floats are, so both round alike).
-- KEYS[1]  a hash: s = current slot (now // window), p = previous slot's count, c = current count
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

local slot = math.floor(now / window)
local previous = 0
local current = 0
local state = redis.call('HMGET', KEYS[1], 's', 'p', 'c')
local stored = tonumber(state[1])
if stored ~= nil then
  if stored == slot then
    previous = tonumber(state[2])
    current = tonumber(state[3])
  elseif stored == slot - 1 then
    previous = tonumber(state[3])
  end
end
local left = window - (now - slot * window)
local weighted = previous * left / window
if previous * left <= (limit - current - cost) * window then
  current = current + cost
  local reset_after = left + window
  redis.call('HSET', KEYS[1], 's', string.format('%d', slot), 'p', string.format('%d', previous),
    'c', string.format('%d', current))
  redis.call('PEXPIRE', KEYS[1], string.format('%d', math.ceil(reset_after / 1000) + 1000))
  return {1, math.max(0, math.floor((limit - current) - weighted)), 0, reset_after}
end
local remaining = math.max(0, math.floor((limit - current) - weighted))
local room = limit - current - cost
local retry_after
if room >= 0 then
  retry_after = math.ceil(left - room * window / previous)
else
  retry_after = left + math.max(0, math.ceil(window - (limit - cost) * window / current))
end
local reset_after = left
if current > 0 then
  reset_after = left + window
end
return {0, remaining, retry_after, reset_after}
