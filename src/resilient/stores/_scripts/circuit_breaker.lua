-- A circuit breaker shared by every process that uses the same key: one hash holds the state
-- and the window's totals, and a count window's ring of outcomes is a bit string next to it
-- (same hash tag, so one Redis Cluster slot); both carry the same TTL. Every decision costs
-- O(1) whatever the window's size: running totals, and one 2-bit BITFIELD read-and-write per
-- recorded call. Mirrors resilient._circuit_breaker._MemoryBackend.
--
-- KEYS[1]   the breaker's hash.
-- KEYS[2]   a count window's ring: 2 bits per call (its outcome code), written with BITFIELD.
-- ARGV[1]   op: "acquire" | "record" | "force_open" | "disable" | "reset" | "read"
-- ARGV[2]   window kind: "count" | "time"
-- ARGV[3]   count: window size (calls); time: window length (ms)
-- ARGV[4]   time: buckets (ignored for a count window)
-- ARGV[5]   minimum_calls
-- ARGV[6]   failure_rate, or -1 when off
-- ARGV[7]   slow_call_rate, or -1 when off
-- ARGV[8]   consecutive_failures, or 0 when off
-- ARGV[9]   half_open_calls
-- ARGV[10]  open delays (ms), comma separated: the n-th opening in a row waits the n-th delay,
--           the last one repeating
-- ARGV[11]  TTL of the hash (ms), refreshed on every write
-- ARGV[12]  trial lease (ms): trials not reported by then are presumed lost with their process,
--           and the slots are handed out again
-- ARGV[13]  record: outcome 0 success, 1 failure, 2 slow success, 3 slow failure, 4 neither
-- ARGV[14]  record: the generation of the permit
-- ARGV[15]  record: "1" when the call was a half-open trial
-- ARGV[16]  optional: the time in ms to use instead of Redis TIME (tests only)
--
-- Replies: acquire {verdict, state, generation, retry_after (ms), old state or '', age (ms)};
-- read {state, old or '', age (ms), calls, failures, slow calls, consecutive failures};
-- record and the operator ops {state, old state or '', generation}.
--
-- Hash fields: st state, gen generation (bumped whenever a CLOSED or HALF_OPEN period ends, so
-- outcomes of calls begun in an earlier period are recognised and dropped), since (ms) when
-- the state began, till (ms) end of the OPEN period, reo openings in a row, ti trials issued,
-- tp trials passed, ls (ms) when the latest trial was handed out, cf consecutive failures; a
-- count window keeps idx, n, f, w (next slot, calls, failures, slow calls; the outcomes
-- themselves are in KEYS[2]); a time window keeps e<i>, c<i>, f<i>, w<i> per bucket i (epoch,
-- calls, failures, slow calls). A 'ring' field in the hash is the window of an earlier version
-- (a string of codes): it is dropped, with the count window's totals, on first sight.

local key = KEYS[1]
local ring_key = KEYS[2]
local op = ARGV[1]
local count_window = ARGV[2] == 'count'
local span = tonumber(ARGV[3])
local buckets = tonumber(ARGV[4])
local minimum_calls = tonumber(ARGV[5])
local failure_rate = tonumber(ARGV[6])
local slow_rate = tonumber(ARGV[7])
local consecutive_limit = tonumber(ARGV[8])
local half_open_calls = tonumber(ARGV[9])
local ttl = tonumber(ARGV[11])
local lease = tonumber(ARGV[12])

local now
if ARGV[16] and ARGV[16] ~= '' then
  now = tonumber(ARGV[16])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local s = {}
if op == 'acquire' then
  -- The hot path needs the state fields only, not the window.
  local names = {'st', 'gen', 'since', 'till', 'reo', 'ti', 'tp', 'ls', 'cf'}
  local values = redis.call('HMGET', key, unpack(names))
  for i, name in ipairs(names) do
    if values[i] then s[name] = values[i] end
  end
else
  local flat = redis.call('HGETALL', key)
  for i = 1, #flat, 2 do s[flat[i]] = flat[i + 1] end
end

local function num(field)
  return tonumber(s[field] or '0')
end

if s.ring then
  -- The window of an earlier version of this script, kept as a string in the hash: start the
  -- count window afresh (its totals went with it).
  redis.call('HDEL', key, 'ring', 'idx', 'n', 'f', 'w')
  redis.call('DEL', ring_key)
  s.ring, s.idx, s.n, s.f, s.w = nil, nil, nil, nil, nil
end

local st = s.st or 'closed'
local old = st
local gen = num('gen')
local since = tonumber(s.since or tostring(now))
local till = num('till')
local reo = num('reo')
local ti = num('ti')
local tp = num('tp')
local ls = num('ls')
local cf = num('cf')
local dirty = {}  -- window fields to write back

local width = (not count_window) and span / buckets or 0
local epoch = (not count_window) and math.floor(now / width) or 0

-- The window's totals: {calls, failures, slow}.
local function totals()
  if count_window then
    return num('n'), num('f'), num('w')
  end
  local calls, failures, slow = 0, 0, 0
  for i = 0, buckets - 1 do
    if num('e' .. i) > epoch - buckets then
      calls = calls + num('c' .. i)
      failures = failures + num('f' .. i)
      slow = slow + num('w' .. i)
    end
  end
  return calls, failures, slow
end

local function clear_window()
  if count_window then
    redis.call('HDEL', key, 'ring', 'idx', 'n', 'f', 'w')
    redis.call('DEL', ring_key)
    s.ring, s.idx, s.n, s.f, s.w = nil, nil, nil, nil, nil
  else
    for i = 0, buckets - 1 do
      redis.call('HDEL', key, 'e' .. i, 'c' .. i, 'f' .. i, 'w' .. i)
      s['e' .. i], s['c' .. i], s['f' .. i], s['w' .. i] = nil, nil, nil, nil
    end
  end
  dirty = {}
end

local function add(code)
  local failed = code % 2
  local slow = math.floor(code / 2) % 2
  if count_window then
    local idx = num('idx')
    local n = num('n')
    local f = num('f') + failed
    local w = num('w') + slow
    -- Write this call's code in its slot and read the code it replaces: O(1).
    local previous = redis.call('BITFIELD', ring_key, 'SET', 'u2', '#' .. idx, code)[1]
    if n == span then
      f = f - previous % 2
      w = w - math.floor(previous / 2) % 2
    else
      n = n + 1
    end
    idx = (idx + 1) % span
    s.idx, s.n, s.f, s.w = tostring(idx), tostring(n), tostring(f), tostring(w)
    dirty = {'idx', 'n', 'f', 'w'}
  else
    local i = epoch % buckets
    if num('e' .. i) ~= epoch then
      s['e' .. i], s['c' .. i], s['f' .. i], s['w' .. i] = tostring(epoch), '0', '0', '0'
    end
    s['c' .. i] = tostring(num('c' .. i) + 1)
    s['f' .. i] = tostring(num('f' .. i) + failed)
    s['w' .. i] = tostring(num('w' .. i) + slow)
    dirty = {'e' .. i, 'c' .. i, 'f' .. i, 'w' .. i}
  end
end

local function open()
  local delays = {}
  for d in string.gmatch(ARGV[10], '[^,]+') do delays[#delays + 1] = tonumber(d) end
  if st == 'half_open' then reo = reo + 1 else reo = 1 end
  local delay = delays[math.min(reo, #delays)]
  st = 'open'
  since = now
  till = now + delay
  gen = gen + 1
end

local function close()
  st = 'closed'
  since = now
  gen = gen + 1
  reo = 0
  cf = 0
  ti = 0
  tp = 0
  clear_window()
end

local function half_open()
  st = 'half_open'
  since = now
  ls = now
  gen = gen + 1
  ti = 0
  tp = 0
end

local function save()
  local fields = {'HSET', key, 'st', st, 'gen', gen, 'since', since, 'till', till, 'reo', reo,
    'ti', ti, 'tp', tp, 'ls', ls, 'cf', cf}
  for _, field in ipairs(dirty) do
    fields[#fields + 1] = field
    fields[#fields + 1] = s[field]
  end
  redis.call(unpack(fields))
  redis.call('PEXPIRE', key, ttl)
  if count_window then redis.call('PEXPIRE', ring_key, ttl) end  -- a no-op while it is empty
end

local function changed()
  if st ~= old then return old end
  return ''
end

if op == 'acquire' or op == 'read' then
  local moved = false
  if st == 'open' and now >= till then
    half_open()
    moved = true
  elseif st == 'half_open' and ti >= half_open_calls and now >= ls + lease then
    -- The trials were lost (their processes died before reporting): hand the slots out again.
    ls = now
    gen = gen + 1
    ti = 0
    tp = 0
    moved = true
  end
  if op == 'read' then
    if moved then save() end
    local calls, failures, slow = totals()
    return {st, changed(), now - since, calls, failures, slow, cf}
  end
  local verdict, retry_after = 0, 0
  if st == 'closed' then
    verdict = 1
  elseif st == 'disabled' then
    verdict = 3
  elseif st == 'open' then
    retry_after = till - now
  elseif st == 'forced_open' then
    retry_after = tonumber(string.match(ARGV[10], '[^,]+'))
  elseif st == 'half_open' and ti < half_open_calls then
    ti = ti + 1
    ls = now  -- the lease runs from the latest trial handed out
    verdict = 2
    moved = true
  end
  if moved then save() end
  return {verdict, st, gen, retry_after, changed(), now - since}
end

if op == 'record' then
  local outcome = tonumber(ARGV[13])
  if tonumber(ARGV[14]) ~= gen then
    return {st, '', gen}  -- the call began in an earlier period
  end
  local failed = outcome == 1 or outcome == 3
  local slow = outcome == 2 or outcome == 3
  if ARGV[15] == '1' then
    if st ~= 'half_open' then return {st, '', gen} end
    if outcome == 4 then
      ti = math.max(ti - 1, 0)  -- the trial counted neither way: give its slot back
    elseif failed or (slow and slow_rate >= 0) then
      open()
    else
      tp = tp + 1
      if tp >= half_open_calls then close() end
    end
    save()
    return {st, changed(), gen}
  end
  if st ~= 'closed' or outcome == 4 then return {st, '', gen} end
  add(outcome)
  if failed then cf = cf + 1 else cf = 0 end
  local calls, failures, slows = totals()
  if (consecutive_limit > 0 and cf >= consecutive_limit)
      or (calls >= minimum_calls and (
        (failure_rate >= 0 and failures / calls >= failure_rate)
        or (slow_rate >= 0 and slows / calls >= slow_rate))) then
    open()
  end
  save()
  return {st, changed(), gen}
end

if op == 'force_open' then
  st = 'forced_open'
  since = now
  gen = gen + 1
elseif op == 'disable' then
  st = 'disabled'
  since = now
  gen = gen + 1
elseif op == 'reset' then
  close()
else
  return redis.error_reply('unknown op ' .. tostring(op))
end
save()
return {st, changed(), gen}
