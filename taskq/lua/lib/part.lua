-- Partitions: limits per partition inside one queue (app.queue(partition_max_running=,
-- partition_rate_limit=), Partition.limit/pause/backoff) and, in a fair queue, turns between
-- partitions. A job's partition is its record's field `part` (absent: none, which a fair queue
-- serves as one partition of its own, named '').
-- Keys, under the queue's base:
--   <base>:fair              '1': a fair queue (its ready jobs wait in lanes, served in turns)
--   <base>:plim              hash: every partition's limits unless it has its own: max_running,
--                            rate_n, rate_window (ms), amax and astart (an adaptive max_running)
--   <base>:part:<p>:<prio>   list, a lane: p's ready jobs of one priority (every job of a fair
--                            queue; in any queue, the jobs of a partition that may not start now)
--   <base>:part:<p>:conf     hash: p's own max_running, rate_n, rate_window, and paused '1' (what
--                            Partition.limit() and pause() set: kept until changed)
--   <base>:part:<p>:until    string: backing off until this unix ms (expires then)
--   <base>:part:<p>:alimit   string: its adaptive limit now (expires a day after its last change)
--   <base>:part:<p>:leases   set: p's jobs leased now;  <base>:part:<p>:rate  zset: its starts
--   <base>:ring:<prio>       zset: partitions whose lane of this priority has jobs and that may
--                            start one, scored by turn (the lowest goes next); <base>:ringseq
--   <base>:blocked           set: partitions that may not start a job now (paused, at their cap,
--                            out of rate, backing off): in no ring until they reopen
--   <base>:pwait             zset: blocked partitions that reopen at a time (unix ms)
--   <base>:laned             counter: jobs in lanes (ready, for depths and max_ready)
--   <base>:backlog           zset: partition -> jobs in its lanes (operator views)
-- A partition without jobs, limits of its own or a pause keeps no key (lists and sets empty out).
-- @include lib/keys
-- @include lib/wake

local function part_key(base, p)
  return base .. ':part:' .. p
end

local fair_of = {}  -- base -> whether the queue is fair, read once per script call

local function is_fair(base)
  local fair = fair_of[base]
  if fair == nil then
    fair = redis.call('GET', base .. ':fair') == '1'
    fair_of[base] = fair
  end
  return fair
end

-- p joins the back of the turns of priority `prio` (unless it is there already)
local function ring_add(base, p, prio)
  redis.call('ZADD', base .. ':ring:' .. prio, 'NX', redis.call('INCR', base .. ':ringseq'), p)
end

-- jobs of partition p wait in its lane, in order (at the front when given back: `front`)
local function lane_push(base, p, prio, ids, front)
  local lane, n = part_key(base, p) .. ':' .. prio, 0
  for i = 1, #ids, 1000 do  -- unpack() has a bounded stack
    n = redis.call(front and 'LPUSH' or 'RPUSH', lane, unpack(ids, i, math.min(i + 999, #ids)))
  end
  redis.call('INCRBY', base .. ':laned', #ids)
  redis.call('ZINCRBY', base .. ':backlog', #ids, p)
  if n == #ids and redis.call('SISMEMBER', base .. ':blocked', p) == 0 then ring_add(base, p, prio) end
end

-- `n` jobs left p's lanes (taken, or cancelled)
local function lane_taken(base, p, n)
  redis.call('DECRBY', base .. ':laned', n)
  if tonumber(redis.call('ZINCRBY', base .. ':backlog', -n, p)) <= 0 then redis.call('ZREM', base .. ':backlog', p) end
end

-- up to n jobs off the front of p's lane (a purge), in order
local function lane_pop(base, p, prio, n)
  local lane = part_key(base, p) .. ':' .. prio
  local ids = redis.call('LPOP', lane, n) or {}
  if #ids > 0 then lane_taken(base, p, #ids) end
  if redis.call('EXISTS', lane) == 0 then redis.call('ZREM', base .. ':ring:' .. prio, p) end
  return ids
end

-- a job out of p's lane (cancelled): true if it was there
local function lane_remove(base, p, prio, id)
  local lane = part_key(base, p) .. ':' .. prio
  if redis.call('LREM', lane, 1, id) == 0 then return false end
  lane_taken(base, p, 1)
  if redis.call('EXISTS', lane) == 0 then redis.call('ZREM', base .. ':ring:' .. prio, p) end
  return true
end

local plim_of = {}  -- base -> the queue's limits for every partition, read once per script call

local function queue_limits(base)
  local q = plim_of[base]
  if q == nil then
    local v = redis.call('HMGET', base .. ':plim', 'max_running', 'rate_n', 'rate_window', 'amax', 'astart')
    q = {cap = tonumber(v[1] or '') or 0, rate_n = tonumber(v[2] or '') or 0, window = tonumber(v[3] or '') or 0,
      amax = tonumber(v[4] or '') or 0, astart = tonumber(v[5] or '') or 1}
    plim_of[base] = q
  end
  return q
end

-- What partition p may do now, computed once per script call (the cache `states`): room (how
-- many more jobs may start), reopen (when a partition out of room may start one again: unix ms,
-- or false: when one of its leases ends, or when it is resumed), its keys.
local function part_state(base, p, now, states, queue_leases)
  local s = states[p]
  if s then return s end
  local pk = part_key(base, p)
  local q = queue_limits(base)
  local c = redis.call('HMGET', pk .. ':conf', 'max_running', 'rate_n', 'rate_window', 'paused')
  local v = redis.call('MGET', pk .. ':until', pk .. ':alimit')
  s = {pk = pk, room = math.huge, reopen = false, paused = c[4] == '1'}
  states[p] = s
  local until_ms = tonumber(v[1] or '') or 0
  if s.paused then
    s.room = 0
    return s
  end
  if until_ms > now then
    s.room, s.reopen = 0, until_ms
    return s
  end
  local cap = tonumber(c[1] or '')
  if not cap then
    cap = q.cap
    if q.amax > 0 then cap = math.max(1, math.min(q.amax, math.floor(tonumber(v[2] or '') or q.astart))) end
  end
  s.cap = cap
  if cap > 0 then
    local leases = pk .. ':leases'
    local count = redis.call('SCARD', leases)
    if count >= cap then  -- a slot whose lease ended without its partition told is free (as lib/gate.lua)
      for _, id in ipairs(redis.call('SRANDMEMBER', leases, 2)) do
        if not redis.call('ZSCORE', queue_leases, id) then
          redis.call('SREM', leases, id)
          count = count - 1
        end
      end
    end
    s.room = cap - count
  end
  local rate_n = tonumber(c[2] or '') or q.rate_n
  local window = tonumber(c[3] or '') or q.window
  if rate_n > 0 and window > 0 then
    s.rate_n, s.window, s.rate = rate_n, window, pk .. ':rate'
    redis.call('ZREMRANGEBYSCORE', s.rate, '-inf', now - window)
    s.rate_left = rate_n - redis.call('ZCARD', s.rate)
    s.room = math.min(s.room, s.rate_left)
  end
  return s
end

-- a job of p leased now (`start` names this start in the rate window)
local function part_pass(s, now, id, start)
  redis.call('SADD', s.pk .. ':leases', id)
  if s.rate then
    redis.call('ZADD', s.rate, now, start)
    redis.call('PEXPIRE', s.rate, s.window)
    s.rate_left = s.rate_left - 1
  end
  s.room = s.room - 1
end

-- p may not start a job now: out of every ring (lazily: a ring that still names it drops it when
-- it comes up), reopened by a resume, when its wait in pwait is over (backoff, rate window), or
-- else when one of its leases ends
local function part_block(base, p, s)
  redis.call('SADD', base .. ':blocked', p)
  local reopen = s.reopen
  if not reopen and not s.paused and s.rate and s.rate_left <= 0 then  -- when its oldest start leaves the window
    local oldest = redis.call('ZRANGE', s.rate, 0, 0, 'WITHSCORES')
    reopen = oldest[2] and tonumber(oldest[2]) + s.window + 1
  end
  if reopen then redis.call('ZADD', base .. ':pwait', reopen, p) end
end

-- p may start jobs again: it takes its turns again for every priority it has jobs of
local function part_reopen(base, p)
  if redis.call('SREM', base .. ':blocked', p) == 0 then return end
  redis.call('ZREM', base .. ':pwait', p)
  local pk = part_key(base, p)
  local any = false
  for prio = 9, 0, -1 do
    if redis.call('EXISTS', pk .. ':' .. prio) == 1 then
      ring_add(base, p, prio)
      any = true
    end
  end
  if any then wake(base) end
end

-- the partitions whose wait (rate window, backoff) is over reopen
local function reopen_due(base, now)
  local due = redis.call('ZRANGEBYSCORE', base .. ':pwait', '-inf', now, 'LIMIT', 0, 1000)
  for _, p in ipairs(due) do part_reopen(base, p) end
end

-- a lease of partition p ended (lib/lease.lua): a partition blocked at its cap may go on
local function part_released(base, p, id)
  local pk = part_key(base, p)
  redis.call('SREM', pk .. ':leases', id)
  if redis.call('SISMEMBER', base .. ':blocked', p) == 0 then return end
  if redis.call('HGET', pk .. ':conf', 'paused') ~= '1' and not redis.call('ZSCORE', base .. ':pwait', p) then
    part_reopen(base, p)
  end
end

-- p backs off until `until_ms` (a task raised RateLimited(partition=True), or Partition.backoff):
-- no job of it starts before then (a later backoff wins over an earlier one)
local function part_backoff(base, p, until_ms, now)
  local key = part_key(base, p) .. ':until'
  if (tonumber(redis.call('GET', key) or '') or 0) >= until_ms then return end
  redis.call('SET', key, until_ms, 'PX', math.max(1, until_ms - now))
  redis.call('SADD', base .. ':blocked', p)
  redis.call('ZADD', base .. ':pwait', until_ms, p)
end

-- An adaptive partition's limit (AIMD): it grows by 1/limit with each success (one slot more per
-- limit's worth of successes) up to amax, and halves (to 1 at least) when the partner says it is
-- too much (RateLimited(partition=True)) or a job overran its time limit. Kept a day after it last
-- changed; a partition with its own max_running is not adaptive.
local function adapt(base, p, grow)
  local q = queue_limits(base)
  if q.amax <= 0 or redis.call('HEXISTS', part_key(base, p) .. ':conf', 'max_running') == 1 then return end
  local key = part_key(base, p) .. ':alimit'
  local limit = tonumber(redis.call('GET', key) or '') or q.astart
  if grow then limit = math.min(q.amax, limit + 1 / limit) else limit = math.max(1, limit / 2) end
  redis.call('SET', key, tostring(limit), 'PX', 86400000)
end

-- ms until the first blocked partition reopens by time (-1: none)
local function part_wait(base, now)
  local first = redis.call('ZRANGE', base .. ':pwait', 0, 0, 'WITHSCORES')
  if not first[2] then return -1 end
  return math.max(1, tonumber(first[2]) - now)
end
