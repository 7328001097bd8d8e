#!lua
-- fetch: promote due scheduled jobs, start prefetched jobs, and lease more to one worker.
-- KEYS[1]  <ns>:{q}   the queue's base (every key below is named from it: lib/keys.lua)
-- ARGV: run (jobs to lease as running: their bodies start now), reserve (more to lease as
--   reserved: prefetched, started later by a fetch that names them), lease ms, worker id,
--   dead ttl ms, suspect_lost (a job whose worker died this many times is always leased reserved,
--   so the worker can run it alone), rate limit n and window ms (0 0: none; at most n jobs leased
--   per sliding window, across every worker), max_running (0: none; at most that many jobs of the
--   queue leased, running or reserved, across every worker), number of gates G, then 4 per gate:
--   task name, rate limit n, window ms, max_running (a task's own limits: its jobs carry the field
--   gate; one over its limit waits in <base>:gate:<task>:held, ready but not leased, and goes
--   back to the front of ready once its task has room), then (id, token) pairs to start now.
-- A job leased running, or started, gets status 'running' and started_ms; a reserved one keeps
-- its place in the leases set (renewed like any lease) and status 'reserved'.
-- Returns {ms until the next scheduled job or until the rate limit lets the next job go, whichever
--   comes first (-1 if neither), number of pairs, 1 if a cap (the queue's or a task's) left jobs
--   behind else 0, 1/0 per pair (started,
--   or refused: cancelled or lease lost), then id, msg, token, deliveries, lost, 1 if running
--   else 0 per leased job}.
-- @include lib/now
-- @include lib/promote
-- @include lib/room
-- @include lib/gate
local now = now_ms()
local base = KEYS[1]
local run, reserve, lease_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local worker, suspect_lost = ARGV[4], tonumber(ARGV[6])
dead_ttl = tonumber(ARGV[5])
local leases, reserved = base .. ':leases', base .. ':reserved'

promote(base, now, 1000)

local gates = {}
local gates_n = tonumber(ARGV[10]) or 0
for i = 11, 10 + 4 * gates_n, 4 do
  gates[ARGV[i]] = new_gate(base, ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]))
end

local out = {-1, 0, 0}
local pairs_n = 0
for i = 11 + 4 * gates_n, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local jk = job_key(base, id)
  local f = redis.call('HMGET', jk, 'token', 'status')
  local ok = 0
  -- 'running' under the same token: this start ran before and its reply was lost (a retry)
  if f[1] == token and (f[2] == 'reserved' or f[2] == 'running') then
    redis.call('HSET', jk, 'status', 'running', 'started_ms', now)
    redis.call('SREM', reserved, id)
    ok = 1
  end
  out[#out + 1] = ok
  pairs_n = pairs_n + 1
end
out[2] = pairs_n

-- lease at most `left` more jobs, running ones first; true if that cut the request
local function within(left)
  left = math.max(0, left)
  if run + reserve <= left then return false end
  reserve = math.max(0, math.min(reserve, left - run))
  run = math.min(run, left)
  return true
end

-- a rate limit: a sliding window of the leases made, across every worker of the queue
local rate_n, rate_window = tonumber(ARGV[7]) or 0, tonumber(ARGV[8]) or 0
local rate_key, limited = base .. ':rate', false
if rate_n > 0 then
  redis.call('ZREMRANGEBYSCORE', rate_key, '-inf', now - rate_window)
  limited = within(rate_n - redis.call('ZCARD', rate_key))
end
-- a concurrency cap: the queue's leases (running and reserved) across every worker
local cap = tonumber(ARGV[9]) or 0
local capped = cap > 0 and within(cap - redis.call('ZCARD', leases))

local want = run + reserve
if want > 0 and redis.call('EXISTS', base .. ':gates') == 1 then
  -- tasks with held jobs; one this worker knows no limit of (removed since?) lets them all go
  for _, task in ipairs(redis.call('SMEMBERS', base .. ':gates')) do
    unpark(gates[task] or new_gate(base, task, 0, 0, 0), now, gates[task] and want or 1000, leases)
  end
end
local n = 0
local parks = 0  -- jobs parked by this call: bounded, so a flood of one task's jobs is met in steps
local stopped = 0  -- the priority whose list the last pop came from
for prio = 9, 0, -1 do
  if n >= want or parks >= 1000 then break end
  stopped = prio
  local ids = redis.call('LPOP', ready_key(base, prio), want - n)
  while ids do
    for _, id in ipairs(ids) do
      local jk = job_key(base, id)
      -- one read; a key that is not a hash answers with an error (no EXISTS and TYPE per job)
      local f = redis.pcall('HMGET', jk, 'msg', 'status', 'lost', 'deliveries', 'gate')
      local g = not f.err and f[5] and gates[f[5]]
      if f.err or not f[1] then
        bury_raw(base, id, f.err and 'unknown_job: ready entry whose job record is not a hash'
          or 'unknown_job: ready entry with no job record', now)
      elseif g and f[2] ~= 'cancelled' and gate_room(g, now, leases) <= 0 then
        park(g, id)
        parks = parks + 1
      elseif f[2] ~= 'cancelled' then
        local lost = tonumber(f[3] or '0') or 0
        local deliveries = (tonumber(f[4] or '0') or 0) + 1
        local token = worker .. ':' .. deliveries
        local running = run > 0 and lost < suspect_lost
        if running then
          run = run - 1
          redis.call('HSET', jk, 'status', 'running', 'token', token, 'started_ms', now, 'deliveries', deliveries)
        else
          redis.call('HSET', jk, 'status', 'reserved', 'token', token, 'deliveries', deliveries)
          redis.call('SADD', reserved, id)
        end
        redis.call('ZADD', leases, now + lease_ms, id)
        if rate_n > 0 then redis.call('ZADD', rate_key, now, id .. ':' .. deliveries) end
        if g then pass(g, now, id .. ':' .. deliveries, id) end
        out[#out + 1] = id
        out[#out + 1] = f[1]
        out[#out + 1] = token
        out[#out + 1] = deliveries
        out[#out + 1] = lost
        out[#out + 1] = running and 1 or 0
        n = n + 1
      end
    end
    -- parked jobs left room: take more of this priority before going down to the next
    ids = n < want and parks > 0 and parks < 1000 and redis.call('LPOP', ready_key(base, prio), want - n)
  end
end

make_room(base, n)
if rate_n > 0 and n > 0 then redis.call('PEXPIRE', rate_key, rate_window) end

out[1] = next_due(base, now)
for _, g in pairs(gates) do  -- jobs held for a task's rate limit: say when its window lets one go
  local wait = g.parked and reopens_in(g, now)
  if wait and (out[1] < 0 or wait < out[1]) then out[1] = wait end
end
if capped then redis.call('SET', base .. ':capped', '1', 'PX', lease_ms * 2) end  -- the next freed slot wakes
if capped then out[3] = 1 end
for _, g in pairs(gates) do
  if g.parked and g.cap > 0 and g.room and g.room <= 0 then out[3] = 1 end
end
if limited then  -- jobs may be left behind for the window: say when the oldest lease in it drops out
  local oldest = redis.call('ZRANGE', rate_key, 0, 0, 'WITHSCORES')
  local wait = oldest[2] and math.max(1, tonumber(oldest[2]) + rate_window - now + 1) or 1
  if out[1] < 0 or wait < out[1] then out[1] = wait end
elseif want > 0 and n >= want and not capped then
  -- jobs left behind: pass the wake-up token on to the next idle worker (higher priorities are empty)
  for prio = stopped, 0, -1 do
    if redis.call('LLEN', ready_key(base, prio)) > 0 then wake(base) break end
  end
end
return out
