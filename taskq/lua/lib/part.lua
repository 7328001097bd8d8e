-- Partitions: limits per partition inside one queue (app.queue(partition_max_running=,
-- partition_rate_limit=), Partition.limit/pause/backoff) and, in a fair queue, turns between
-- partitions. A job's partition is its record's field `part` (absent: none, which a fair queue
-- serves as one partition of its own, named '').
-- Keys, under the queue's base:
--   <base>:fair              '1': a fair queue (its ready jobs wait in lanes, served in turns)
--   <base>:plim              hash: every partition's limits unless it has its own: max_running,
--                            rate_n, rate_window (ms), amax and astart (an adaptive max_running)
--   <base>:pany              '1' once any partition of the queue has a state of its own (conf):
--                            until then no partition's conf is read
--   <base>:part:<p>:<prio>   list, a lane: p's ready jobs of one priority (every job of a fair
--                            queue; in any queue, the jobs of a partition that may not start now)
--   <base>:part:<p>:conf     hash: p's own max_running, rate_n, rate_window and paused '1' (what
--                            Partition.limit() and pause() set, kept until changed), until
--                            (backing off until unix ms), alimit and acut (its adaptive limit
--                            now, and '1' once cut); with no field of the first kind, the hash
--                            expires a day after its last change
--   <base>:part:<p>:leases   set: p's jobs leased now, kept while a cap may apply to the queue's
--                            partitions (plim, an adaptive limit, or any conf)
--   <base>:part:<p>:rate     zset: its starts in its rate window
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

local flags_of = {}  -- base -> {fair, any}: the queue's flags, read once per script call

local function queue_flags(base)
  local f = flags_of[base]
  if f == nil then
    local v = redis.call('MGET', base .. ':fair', base .. ':pany')
    f = {fair = v[1] == '1', any = v[2] == '1'}
    flags_of[base] = f
  end
  return f
end

local function is_fair(base)
  return queue_flags(base).fair
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

-- whether a partition's cap may apply (so its leases are counted): the queue's, an adaptive one,
-- or a partition's own (any conf)
local function caps_apply(base)
  local q = queue_limits(base)
  return q.cap > 0 or q.amax > 0 or queue_flags(base).any
end

-- a partition's conf changed: the queue's partitions' confs are read from now on; it is kept
-- while it holds what a person set (`own`: whether it does; nil: read it), else it expires a day
-- after its last change
local function conf_written(base, pk, own)
  if not queue_flags(base).any then
    redis.call('SET', base .. ':pany', '1')
    flags_of[base] = nil
  end
  if own == nil then
    local v = redis.call('HMGET', pk .. ':conf', 'max_running', 'rate_n', 'paused')
    own = (v[1] or v[2] or v[3]) and true or false
  end
  if own then redis.call('PERSIST', pk .. ':conf') else redis.call('PEXPIRE', pk .. ':conf', 86400000) end
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

-- `n` jobs left p's lanes: how many its lanes still hold (the caller counts `laned` down, or
-- lane_taken does: `count`)
local function lane_left(base, p, n, count)
  if count then redis.call('DECRBY', base .. ':laned', n) end
  local left = tonumber(redis.call('ZINCRBY', base .. ':backlog', -n, p))
  if left <= 0 then redis.call('ZREM', base .. ':backlog', p) end
  return left
end

local function lane_taken(base, p, n)
  lane_left(base, p, n, true)
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

-- What partition p may do now, computed once per script call (the cache `states`): room (how
-- many more jobs may start), reopen (when a partition out of room may start one again: unix ms,
-- or false: when one of its leases ends, or when it is resumed), whether its leases are counted.
local function part_state(base, p, now, states, queue_leases)
  local s = states[p]
  if s then return s end
  local pk = part_key(base, p)
  local q = queue_limits(base)
  s = {pk = pk, room = math.huge, reopen = false, paused = false, counted = caps_apply(base)}
  states[p] = s
  local c = {}
  if queue_flags(base).any then
    c = redis.call('HMGET', pk .. ':conf', 'max_running', 'rate_n', 'rate_window', 'paused', 'until', 'alimit')
  end
  if c[4] == '1' then
    s.paused, s.room = true, 0
    return s
  end
  local until_ms = tonumber(c[5] or '') or 0
  if until_ms > now then
    s.room, s.reopen = 0, until_ms
    return s
  end
  local cap = tonumber(c[1] or '')
  if not cap then
    cap = q.cap
    if q.amax > 0 then cap = math.max(1, math.min(q.amax, math.floor(tonumber(c[6] or '') or q.astart))) end
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
  if s.counted then redis.call('SADD', s.pk .. ':leases', id) end
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
  if not caps_apply(base) then return end  -- no cap: nothing was counted, nothing waits for a slot
  local pk = part_key(base, p)
  redis.call('SREM', pk .. ':leases', id)
  if redis.call('SISMEMBER', base .. ':blocked', p) == 0 then return end
  if redis.call('HGET', pk .. ':conf', 'paused') ~= '1' and not redis.call('ZSCORE', base .. ':pwait', p) then
    part_reopen(base, p)
  end
end

-- p backs off until `until_ms` (a task raised RateLimited(partition=True), or Partition.backoff):
-- no job of it starts before then (a later backoff wins over an earlier one)
local function part_backoff(base, p, until_ms)
  local pk = part_key(base, p)
  if (tonumber(redis.call('HGET', pk .. ':conf', 'until') or '') or 0) >= until_ms then return end
  redis.call('HSET', pk .. ':conf', 'until', until_ms)
  conf_written(base, pk)
  redis.call('SADD', base .. ':blocked', p)
  redis.call('ZADD', base .. ':pwait', until_ms, p)
end

-- An adaptive partition's limit: it starts at astart and grows by one slot per success (slow
-- start) until the partner first says it is too much; from then on by a tenth of a slot per
-- limit's worth of successes. RateLimited(partition=True) or a time limit cuts it to 9/10, and
-- to the jobs of the partition still leased when the partner said so (what it bore), 1 at least.
-- A partition with its own max_running is not adaptive. `leased`: its jobs leased now (a cut).
local function adapt(base, p, grow, leased)
  local q = queue_limits(base)
  if q.amax <= 0 then return end
  local pk = part_key(base, p)
  local c = redis.call('HMGET', pk .. ':conf', 'max_running', 'alimit', 'acut', 'rate_n', 'paused')
  if c[1] then return end
  local limit = tonumber(c[2] or '') or q.astart
  if grow then
    if limit >= q.amax then return end
    limit = math.min(q.amax, limit + (c[3] and 0.1 / limit or 1))
    redis.call('HSET', pk .. ':conf', 'alimit', tostring(limit))
  else
    limit = math.max(1, math.min(limit * 0.9, leased or limit))
    redis.call('HSET', pk .. ':conf', 'alimit', tostring(limit), 'acut', '1')
  end
  conf_written(base, pk, (c[4] or c[5]) and true or false)
end

-- ms until the first blocked partition reopens by time (-1: none)
local function part_wait(base, now)
  local first = redis.call('ZRANGE', base .. ':pwait', 0, 0, 'WITHSCORES')
  if not first[2] then return -1 end
  return math.max(1, tonumber(first[2]) - now)
end
