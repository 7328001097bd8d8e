#!lua flags=allow-oom
-- GENERATED from taskq/lua/ops/cancel.lua and the taskq/lua/lib/ files it includes:
-- edit those, then run `make lua`.
-- cancel: stop a job that has not finished. Queued, scheduled, failed (waiting for its retry),
-- reserved (prefetched, not started) and waiting (a workflow step whose parents have not all
-- ended) jobs end cancelled and never start; a running one
-- finishes its attempt but is never retried. Foreign producers may call this script
-- (taskq/lua/public/cancel.lua, the same with its includes written out; docs/protocol.md §7).
-- allow-oom: it ends a job, which frees memory.
-- KEYS[1] <ns>:{q}:job:<id>   hash
-- KEYS[2] <ns>:{q}:scheduled  zset; the queue's base is this key's prefix
-- KEYS[3] <ns>:{q}:done:<id>  list  result wake-up for job.result() (named again from the base)
-- ARGV: id, result ttl ms, and optionally an abort note (who asked): a running job is then
--   stopped too (its worker learns it when it renews the lease), and the job's reason says
--   'aborted: <note>' when it ends cancelled
-- Returns the status the job had (false if there is no such job).
-- now_ms(): Redis's clock (TIME) in unix ms, the one clock of every script (never the client's).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- The one place a job ends (succeeded, dead or cancelled): lease dropped (with the fields in
-- `gone`), final status and finished_ms plus `fields` (a list of name, value; a succeeded job's
-- record is written anew instead, small, and capped per queue: compact, keep_newest), the record expires
-- after `ttl` ms, the deduplication key is released (or, with the job's key_ttl ms, held that
-- long more: a dedup window), the ordering key passes to the next job in
-- line, a result() waiter is woken, the event (its status, with its reason) is appended and
-- counted in the history (succeeded, dead: lib/stats.lua), and a
-- workflow step with successors goes onto the queue's outbox, in this same step, so a worker
-- dying right after cannot lose their continuation (taskq/worker/continuer.py drains it).
-- `links` holds the job's LINKS fields when the caller has read them (links_of), else nil: read here.
-- The lease of a job leaving its worker (it ended, is retried, given back or recovered): out of
-- the leases and reserved sets (and its task's, if the task has max_running=), token deleted
-- (with the fields in `also`, a list of names; false: the caller rewrites the record), so the last
-- holder's late calls are refused.
-- `gate` and `part` are the job's fields of those names when the caller has read them (nil: read
-- them here); a job of a partition frees its slot there (lib/part.lua).
-- Key names of one queue from its base '<namespace>:{<queue>}', as taskq/broker/keys.py builds
-- them. They share the base's hash tag, so every key here is in the script's Cluster slot.
local function ready_key(base, prio)
  if prio == 0 then return base .. ':ready' end
  return base .. ':ready:' .. prio
end

local function job_key(base, id)
  return base .. ':job:' .. id
end

-- the line of jobs of one ordering key (lib/order.lua)
local function order_key(base, key)
  return base .. ':order:' .. key
end

-- the keys of a task's own limits (rate_limit=, max_running= on @app.task) start with this
local function gate_key(base, task)
  return base .. ':gate:' .. task
end

-- a stored priority (text); anything but an integer from 0 to 9 reads as 0
local function priority_of(raw)
  local p = tonumber(raw or '0')
  if not p or p < 0 or p > 9 or p % 1 ~= 0 then return 0 end
  return p
end

-- wake(base): make sure a wake-up token waits on the queue's notify list for idle workers.
-- One token is enough: a worker that takes it and leaves ready jobs behind passes it on
-- (fetch.lua), so a burst reaches every idle worker one hop at a time, and tokens never pile up.
local woken = {}
local function wake(base)
  if woken[base] then return end
  woken[base] = true
  local notify = base .. ':notify'
  if redis.call('LLEN', notify) == 0 then redis.call('LPUSH', notify, '1') end
end
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

-- a job out of p's lane (cancelled): true if it was there
local function lane_remove(base, p, prio, id)
  local lane = part_key(base, p) .. ':' .. prio
  if redis.call('LREM', lane, 1, id) == 0 then return false end
  lane_taken(base, p, 1)
  if redis.call('EXISTS', lane) == 0 then redis.call('ZREM', base .. ':ring:' .. prio, p) end
  return true
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

local function drop_lease(base, id, jk, also, gate, part)
  redis.call('ZREM', base .. ':leases', id)
  -- a fetch refused jobs for the queue's max_running: this freed slot wakes an idle worker
  if redis.call('DEL', base .. ':capped') == 1 then wake(base) end
  redis.call('SREM', base .. ':reserved', id)
  if gate == nil or part == nil then
    local f = redis.call('HMGET', jk, 'gate', 'part')
    if gate == nil then gate = f[1] end
    if part == nil then part = f[2] end
  end
  if part then part_released(base, part, id) end
  if gate then
    -- a job of this task waits for a free slot of its task: this one wakes an idle worker
    local gk = gate_key(base, gate)
    if redis.call('SREM', gk .. ':leases', id) == 1 and redis.call('EXISTS', gk .. ':held') == 1 then wake(base) end
  end
  if also == false then return end  -- the caller writes the record anew (lib/finish.lua)
  if also then redis.call('HDEL', jk, 'token', unpack(also)) else redis.call('HDEL', jk, 'token') end
end
-- Ordering keys: jobs of one queue with the same ordering key run one at a time, in the order
-- they entered the queue (a delayed job enters when it falls due). The key's list
-- <base>:order:<key> holds them, the one holding the key first: only that job is ever ready,
-- leased or waiting for its retry. The others wait, counted in <base>:ordered; the holder ends
-- (succeeds, is dead-lettered or cancelled) and the next in line becomes ready.
-- The one place a job becomes ready: its id goes onto the ready list of its priority (at the
-- back, or at the front when it is given back), or in a fair queue onto its partition's lane of
-- that priority (lib/part.lua), its status becomes 'queued', and an idle worker is woken. A job
-- due later waits in the scheduled set instead (schedule below).

-- jk false: the caller wrote status 'queued'; part: the job's partition (false: none; nil: not
-- known to the caller, read from the record when the queue is fair)
local function ready(base, id, jk, prio, front, part)
  if jk then redis.call('HSET', jk, 'status', 'queued') end
  local fair = is_fair(base)
  if part == nil and fair then part = redis.call('HGET', jk or job_key(base, id), 'part') end
  -- a job of a partition whose lanes hold jobs joins them, so the partition keeps its order
  if fair or (part and redis.call('ZSCORE', base .. ':backlog', part)) then
    lane_push(base, part or '', prio, {id}, front)
  else
    redis.call(front and 'LPUSH' or 'RPUSH', ready_key(base, prio), id)
  end
  wake(base)
end

-- A job with ordering key `key` ended: if it held the key, the next in line becomes ready (one
-- whose record is gone or that ended meanwhile is passed over); else it leaves the line.
local function release_order(base, id, key)
  local list = order_key(base, key)
  if redis.call('LINDEX', list, 0) ~= id then
    if redis.call('LREM', list, 1, id) > 0 then redis.call('DECR', base .. ':ordered') end
    return
  end
  redis.call('LPOP', list)
  while true do
    local next_id = redis.call('LINDEX', list, 0)
    if not next_id then return end
    redis.call('DECR', base .. ':ordered')
    local f = redis.pcall('HMGET', job_key(base, next_id), 'status', 'priority', 'part')
    if not f.err and f[1] == 'queued' then
      ready(base, next_id, false, priority_of(f[2]), false, f[3])
      return
    end
    redis.call('LPOP', list)
  end
end
-- The queue's event stream (docs/protocol.md §8): one entry per job transition, appended by the
-- script that makes the transition, so an event is never missing or doubled. The stream
-- <base>:events keeps about <base>:events:max entries (absent: 10000; 0: this queue writes
-- none), trimmed as it grows (XADD MAXLEN ~). Its keys share the base's hash tag.
local events_max = false  -- read once per script call

-- append one event: kind, job id, task name, attempt, then `more` (a list of name, value; or nil)
local function emit(base, kind, id, task, attempt, more)
  if events_max == false then
    events_max = tonumber(redis.call('GET', base .. ':events:max') or '10000') or 10000
  end
  if events_max <= 0 then return end
  if more then
    redis.call('XADD', base .. ':events', 'MAXLEN', '~', events_max, '*', 'kind', kind, 'job', id,
      'task', task or '', 'attempt', attempt or '1', unpack(more))
  else
    redis.call('XADD', base .. ':events', 'MAXLEN', '~', events_max, '*', 'kind', kind, 'job', id,
      'task', task or '', 'attempt', attempt or '1')
  end
end

-- ms a run took, as an event field pair (nothing if it never started)
local function ran_for(more, started_ms, now)
  local started = tonumber(started_ms or '')
  if started then
    more[#more + 1] = 'duration_ms'
    more[#more + 1] = now - started
  end
  return more
end
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

-- the fields of a job that ending it needs, in this order: HMGET(jk, ..., unpack(LINKS))
local LINKS = {'dedup', 'waiter', 'order', 'gate', 'task', 'attempt', 'started_ms', 'children', 'part', 'key_ttl',
  'logs'}

local function links_of(f, i)  -- from an HMGET whose fields i.. are LINKS
  return {dedup = f[i], waiter = f[i + 1], order = f[i + 2], gate = f[i + 3], task = f[i + 4],
    attempt = f[i + 5], started = f[i + 6], children = f[i + 7], part = f[i + 8], key_ttl = f[i + 9],
    logs = f[i + 10]}
end

-- what a succeeded job's record keeps besides its status, end, attempt, result and the LINKS
-- fields task, started_ms and children: what result(), info() and the dashboard read (the last
-- progress a run reported too), not the message (docs/protocol.md §3)
local KEPT = {'enqueued_ms', 'deliveries', 'lost', 'priority', 'place', 'fired_by', 'progress', 'progress_text',
  'progress_ms'}
local KEPT_AND_MSG = {unpack(KEPT)}
KEPT_AND_MSG[#KEPT + 1] = 'msg'  -- read in the same HMGET: kept beside the record while keep_args > 0
local KEEP_DEFAULT = 100000  -- app.queue(keep_succeeded=) when <base>:succeeded:max is absent
local ARGS_DEFAULT = 1000  -- app.queue(keep_args=) when <base>:args:max is absent
local keep_max = false  -- read once per script call
local args_max = false  -- read once per script call

-- the queue's keep_args: how many of its newest succeeded records keep their message
local function args_window(base)
  if args_max == false then
    args_max = tonumber(redis.call('GET', base .. ':args:max') or ARGS_DEFAULT) or ARGS_DEFAULT
  end
  return args_max
end

local function keep(out, name, value)  -- append the pair if there is a value
  if value then
    out[#out + 1] = name
    out[#out + 1] = value
  end
end

-- write a succeeded job's record anew with only what it keeps (lost and priority 0 left out:
-- absent reads as 0), so Redis stores it as a small listpack again (HDEL would leave it a hash
-- table); returns its place (a workflow step's), or nil. A job that goes on the queue's succeeded
-- list (no waiter, no place: keep_newest) leaves its message in <base>:args:kept while
-- keep_args > 0, until keep_newest forgets it; the record itself never holds it.
local function compact(base, id, jk, now, fields, links)
  local v = redis.call('HMGET', jk, unpack(KEPT_AND_MSG))
  local out = {'status', 'succeeded', 'finished_ms', now, 'attempt', links.attempt or 1}
  local msg = v[#KEPT + 1]
  if msg and not links.waiter and not v[5] and args_window(base) > 0 then
    redis.call('HSET', base .. ':args:kept', id, msg)
  end
  keep(out, 'task', links.task)
  keep(out, 'started_ms', links.started)
  keep(out, 'children', links.children)
  keep(out, 'part', links.part)
  for i = 1, #KEPT do
    if not ((KEPT[i] == 'lost' or KEPT[i] == 'priority') and v[i] == '0') then keep(out, KEPT[i], v[i]) end
  end
  for i = 1, #fields do out[#out + 1] = fields[i] end
  redis.call('DEL', jk)
  redis.call('HSET', jk, unpack(out))
  return v[5]
end

local function cap_of(base)  -- the succeeded (and cancelled) lists' length; -1: records not capped
  if keep_max == false then
    keep_max = tonumber(redis.call('GET', base .. ':succeeded:max') or KEEP_DEFAULT) or KEEP_DEFAULT
  end
  return keep_max
end

-- the queue keeps its newest keep_succeeded succeeded records (a list in the order they ended,
-- which `taskq job --state succeeded` reads, newest last; one the list names that is no longer a
-- succeeded record, replaced or expired, is left alone; with no cap, the list still keeps the
-- newest KEEP_DEFAULT ids and no record is deleted); the newest keep_args of them keep their
-- message in <base>:args:kept: the one falling out of that window loses it here
local function keep_newest(base, id)
  local cap = cap_of(base)
  local list = base .. ':succeeded'
  local n = redis.call('RPUSH', list, id)
  local window = args_window(base)
  if window > 0 and n > window then
    redis.call('HDEL', base .. ':args:kept', redis.call('LINDEX', list, n - window - 1))
  end
  local most = cap < 0 and KEEP_DEFAULT or cap
  if n <= most then return end
  local gone = redis.call('LPOP', list, n - most)
  if window > most then redis.call('HDEL', base .. ':args:kept', unpack(gone)) end  -- a window past the cap
  for _, old in ipairs(gone) do
    local ok = job_key(base, old)
    if cap >= 0 and redis.call('HGET', ok, 'status') == 'succeeded' then
      redis.call('DEL', ok, base .. ':logs:' .. old)
    end
  end
end

-- the queue's cancelled ids in the order they ended, for `taskq job --state cancelled` (capped as
-- the succeeded list; the records expire with their ttl, the list forgets them as it is trimmed)
local function list_cancelled(base, id)
  local cap = cap_of(base)
  local list, most = base .. ':cancelled', cap < 0 and KEEP_DEFAULT or cap
  if most == 0 then return end
  if redis.call('RPUSH', list, id) > most then redis.call('LTRIM', list, -most, -1) end
end

local function finish(base, id, jk, status, now, ttl, fields, gone, links)
  if links == nil then links = links_of(redis.call('HMGET', jk, unpack(LINKS)), 1) end
  -- false: no HDEL of fields from a record that compact() writes anew
  drop_lease(base, id, jk, status ~= 'succeeded' and gone, links.gate or false, links.part or false)
  if status == 'succeeded' then
    local place = compact(base, id, jk, now, fields, links)
    -- a result someone waits for, and a workflow step's (its flow reads it), stay for the ttl
    if not links.waiter and not place then keep_newest(base, id) end
  else
    redis.call('HSET', jk, 'status', status, 'finished_ms', now, unpack(fields))
    if status == 'cancelled' then list_cancelled(base, id) end
  end
  redis.call('PEXPIRE', jk, ttl)
  -- its log lines (lib/logs.lua) go with it; a job that logged nothing has no list to expire
  if links.logs then redis.call('PEXPIRE', base .. ':logs:' .. id, ttl) end
  local more = {}
  for i = 1, #fields, 2 do
    if fields[i] == 'reason' then more[1], more[2] = 'reason', fields[i + 1] end
  end
  emit(base, status, id, links.task, links.attempt, ran_for(more, links.started, now))
  if status ~= 'cancelled' then stats_count(base, now, links.task, status == 'dead' and 'd' or 's') end
  if links.dedup and redis.call('GET', links.dedup) == id then  -- not if a newer job holds it (debounce)
    local hold = tonumber(links.key_ttl or '') or 0
    if hold > 0 then redis.call('PEXPIRE', links.dedup, hold) else redis.call('DEL', links.dedup) end
  end
  if links.order then release_order(base, id, links.order) end
  if links.waiter then
    local done = base .. ':done:' .. id
    redis.call('RPUSH', done, '1')
    redis.call('PEXPIRE', done, ttl)
  end
  if links.children then redis.call('ZADD', base .. ':outbox', now, id) end
end
-- Where a job that has not started waits, and moving it: the one place a job leaves its place
-- without ending (cancel ends it right after; a debounced call, job.reschedule() and
-- job.set_priority() place it again). A queued job waits on its priority's ready list, in its
-- partition's lane (lib/part.lua), in its task's held line (lib/gate.lua) or behind its ordering
-- key (lib/order.lua); a scheduled one in the scheduled set; a reserved one is leased to a worker
-- that prefetched it (taken back: its token is deleted, so that worker's start is refused in
-- ops/fetch.lua and it never runs there).
-- A task's own limits (rate_limit= and max_running= on @app.task), checked as fetch leases its
-- jobs (they carry the field gate = the task's name). A job over its task's limit is parked: it
-- waits, still queued, in <gate>:held; once the task has room again, a fetch leases it first.
-- Starts are counted in the sliding window <gate>:rate, leases in the set <gate>:leases
-- (dropped by lib/lease.lua, which wakes an idle worker for the held jobs).

-- a held job cancelled: out of its task's held list (true if it was there)
local function drop_held(base, task, id)
  if redis.call('LREM', gate_key(base, task) .. ':held', 1, id) == 0 then return false end
  redis.call('DECR', base .. ':parked')
  return true
end

-- what a move reads of a job, in this order (placed_of)
local PLACE_FIELDS = {'status', 'priority', 'gate', 'part', 'order', 'expires_in', 'expires_at', 'debounce_by',
  'enqueued_ms'}

-- A job not started (status queued, scheduled or failed) out of the list or set it waits in.
-- Returns 'ready' (it was on a ready list or a lane), 'held' (its task's line), 'scheduled', or
-- false: a queued job waiting behind its ordering key (its key's line is the caller's to leave).
local function unplace(base, id, status, prio, gate, part)
  if status ~= 'queued' then
    redis.call('ZREM', base .. ':scheduled', id)
    return 'scheduled'
  end
  if redis.call('LREM', ready_key(base, prio), 1, id) == 1 then return 'ready' end
  if (part or is_fair(base)) and lane_remove(base, part or '', prio, id) then return 'ready' end
  if gate and drop_held(base, gate, id) then return 'held' end
  return false
end

local now = now_ms()
local base = string.sub(KEYS[2], 1, -#':scheduled' - 1)
local id, jk = ARGV[1], KEYS[1]
local f = redis.call('HMGET', jk, 'status', 'priority', 'gate', 'part')
local status = f[1]
if not status then return false end
local note = ARGV[3] and ARGV[3] ~= '' and ARGV[3]
if status == 'running' then
  redis.call('HSET', jk, 'cancel', '1')
  if note then redis.call('HSET', jk, 'abort', note) end
  return status
end
if status ~= 'queued' and status ~= 'scheduled' and status ~= 'failed' and status ~= 'reserved'
    and status ~= 'waiting' then
  return status
end
-- out of the list or set it waits in, so the id cannot outlive its record there (finish() drops a
-- reserved one's lease and takes a job out of its ordering key's line; a waiting step is in none)
if status ~= 'reserved' and status ~= 'waiting' then unplace(base, id, status, priority_of(f[2]), f[3], f[4]) end
finish(base, id, jk, 'cancelled', now, tonumber(ARGV[2]), note and {'reason', 'aborted: ' .. note} or {})
return status
