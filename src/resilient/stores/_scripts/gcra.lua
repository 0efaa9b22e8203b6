-- GCRA (TokenBucket): one decision, the same formulas as resilient._rate_limit.gcra.
-- KEYS[1]  the key's theoretical arrival time (TAT), a string of integer microseconds
-- ARGV     interval, tolerance, cost [, now]  (integers; microseconds)
--          `now` is for tests only: without it the time is Redis's own (TIME).
-- Returns  {allowed (0|1), remaining, retry_after, reset_after}, integers (microseconds): an
--          array of integer replies, which a client parses without any string work.
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])

local now = tonumber(ARGV[4])
if now == nil then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end

local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
  tat = now
end
local new_tat = tat + cost * interval
local backlog = new_tat - now
if backlog <= tolerance then
  -- The key is worthless once its TAT has passed: it expires then (plus a second of slack).
  redis.call('SET', KEYS[1], string.format('%d', new_tat),
    'PX', string.format('%d', math.ceil(backlog / 1000) + 1000))
  return {1, math.floor((tolerance - backlog) / interval), 0, backlog}
end
backlog = tat - now
local remaining = 0
if backlog <= tolerance then
  remaining = math.floor((tolerance - backlog) / interval)
end
return {0, remaining, new_tat - tolerance - now, backlog}
