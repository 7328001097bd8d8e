-- History, the one place it is counted (docs/protocol.md §14): per queue and per task, per
-- minute, one hash <base>:stats:<unix minute> (the base's hash tag: the script's Cluster slot)
-- with counters e (enqueued), st (started), s (succeeded), f (failed attempts), r (retries
-- scheduled), d (dead), rn (runs timed), rt (their runtime, ms), rtm (the longest), w (wait before
-- start, ms), wm (the longest), and the same fields prefixed 't:<task>:' for the job's task.
-- Each minute's counts go into its hour too, <base>:stats:h:<unix hour> (the same fields, sums
-- added, maxima kept), so a long window reads 24 keys a day and memory stays flat: a minute
-- bucket expires STATS_MINUTE_TTL ms (25 hours) after its last write, an hour bucket STATS_TTL
-- (8 days). Counts gather in a table and are written by stats_flush(): at once (one job's
-- change), or once per bucket at the end of a script that moves many jobs (fetch, settle:
-- stats_batch() first), so a batch costs one HMGET, one HSET and one PEXPIRE per minute it
-- touched and as many per hour, not a write per job.
local STATS_TTL = 8 * 86400000
local STATS_MINUTE_TTL = 25 * 3600000
local stats_acc = {}  -- minute stats key -> {field -> number}
local stats_hour = {}  -- minute stats key -> its hour's key
local stats_batched = false
local STATS_MAXIMA = {rtm = true, wm = true}  -- the rest are sums

local function stats_is_max(name)
  return STATS_MAXIMA[string.match(name, '[^:]*$')]
end

-- add `acc`'s counts to the bucket `key` (sums added, maxima kept) and let it live `ttl` ms
local function stats_write(key, acc, ttl)
  local names = {}
  for name in pairs(acc) do names[#names + 1] = name end
  local old = redis.call('HMGET', key, unpack(names))
  local out = {}
  for i, name in ipairs(names) do
    local was = tonumber(old[i] or '0') or 0
    local v = acc[name]
    if stats_is_max(name) then
      if v > was then out[#out + 1] = name; out[#out + 1] = v end
    else
      out[#out + 1] = name; out[#out + 1] = was + v
    end
  end
  if #out > 0 then redis.call('HSET', key, unpack(out)) end
  redis.call('PEXPIRE', key, ttl)
end

local function stats_flush()
  local hours = {}  -- hour key -> the sum of its minutes' counts in this call
  for key, acc in pairs(stats_acc) do
    stats_write(key, acc, STATS_MINUTE_TTL)
    local hkey = stats_hour[key]
    local hacc = hours[hkey]
    if not hacc then
      hours[hkey] = acc  -- the first minute of its hour in this call: its table serves as the sum
    else
      for name, v in pairs(acc) do
        local was = hacc[name]
        if not was then
          hacc[name] = v
        elseif stats_is_max(name) then
          if v > was then hacc[name] = v end
        else
          hacc[name] = was + v
        end
      end
    end
  end
  for hkey, hacc in pairs(hours) do stats_write(hkey, hacc, STATS_TTL) end
  stats_acc = {}
  stats_hour = {}
end

-- from here on, counts wait for the script's own stats_flush()
local function stats_batch()
  stats_batched = true
end

local function stats_put(acc, name, v, is_max)
  local was = acc[name]
  if is_max then
    if not was or v > was then acc[name] = v end
  else
    acc[name] = (was or 0) + v
  end
end

-- count `kind` (a field above: e, st, s, f, r, d) once for the job's queue and task, at `now`;
-- `ms` with 'st' is the wait, with 'rn' the runtime (their sums and maxima are kept too)
local function stats_count(base, now, task, kind, ms)
  local key = base .. ':stats:' .. math.floor(now / 60000)
  local acc = stats_acc[key]
  if not acc then
    acc = {}
    stats_acc[key] = acc
    stats_hour[key] = base .. ':stats:h:' .. math.floor(now / 3600000)
  end
  local prefixes = {''}
  if task and task ~= '' then prefixes[2] = 't:' .. task .. ':' end
  for _, p in ipairs(prefixes) do
    stats_put(acc, p .. kind, 1, false)
    if ms then
      ms = math.max(0, ms)
      local sum = kind == 'st' and 'w' or 'rt'
      stats_put(acc, p .. sum, ms, false)
      stats_put(acc, p .. sum .. 'm', ms, true)
    end
  end
  if not stats_batched then stats_flush() end
end

-- a run starts: its wait is from when it was due (due_ms, written where a job is scheduled or a
-- retry is set) or else enqueued, whichever is later
local function stats_started(base, now, task, enqueued_ms, due_ms)
  local from = math.max(tonumber(enqueued_ms or '') or now, tonumber(due_ms or '') or 0)
  stats_count(base, now, task, 'st', now - from)
end

-- a run a worker reported ended (success, failure): its runtime, from started_ms
local function stats_ran(base, now, task, started_ms)
  local started = tonumber(started_ms or '')
  if started then stats_count(base, now, task, 'rn', now - started) end
end
