#!lua
-- GENERATED from taskq/lua/ops/enqueue.lua and the taskq/lua/lib/ files it includes:
-- edit those, then run `make lua`.
-- enqueue: store one job and make it ready (or scheduled) in one step. Foreign producers call
-- this script (taskq/lua/public/enqueue.lua, the same with its includes written out; docs/protocol.md §6).
-- KEYS[1] <ns>:{q}:job:<id>     hash   the job record (created here)
-- KEYS[2] <ns>:{q}:ready[:p]    list   ready ids of the job's priority (named again from ARGV[6])
-- KEYS[3] <ns>:{q}:scheduled    zset   id -> due unix ms; the queue's base is this key's prefix
-- KEYS[4] <ns>:{q}:notify       list   wake-up token for idle workers
-- KEYS[5] <ns>:{q}:key:<key>    string dedup key -> live job id (only used when ARGV[5] == '1')
-- ARGV: id, packed message, delay_ms, at_ms (0 = use delay), has_key ('1'/'0'), priority,
--       and optionally: max_ready (0 or absent = no limit: the queue's ready jobs, all priorities,
--       plus those waiting behind an ordering key), ordering key ('' or absent = none), gate (the
--       task's name if the task has its own rate_limit= or max_running=; '' or absent = none),
--       task name (for the job's record and its events; '' or absent = not told), expires in (ms
--       after the due time a job may still start; '0' or absent = no deadline), expires at (a unix
--       ms deadline instead; '0' or absent = none): a job not started by then ends cancelled,
--       partition ('' or absent = none: lib/part.lua), key ttl (ms the dedup key stays held after
--       its job ended: calls meanwhile get that job; '0' or absent = released when it ends),
--       debounce (ms; '0' or absent = none) and debounce max (ms after the key's job was created
--       that it may be put off to at most; '0' or absent = no cap), flags ('a': at most once, a
--       job whose worker died while running it is dead-lettered, not run again; '' or absent = none)
-- With debounce (and a key): a job created is due `debounce` ms later; while the key's job is
-- queued or scheduled, a call moves it to now + debounce (never past its cap) and gives it this
-- call's message (its "id" entry rewritten to the job's id), and returns that job; once the key's
-- job started (reserved, running) or ended, a new job takes the key.
-- Returns {job id, 1 if created else 0}; an existing live job with the same key wins; {id, -1} if
-- the job would be ready now but the queue holds max_ready ready jobs (nothing written).
-- now_ms(): Redis's clock (TIME) in unix ms, the one clock of every script (never the client's).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
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

-- A job due at `due` (unix ms) waits in the scheduled set, with status 'scheduled' (or
-- 'failed': an attempt failed and its retry waits; jk false: the caller wrote the status and due_ms);
-- fetch and promote make it ready when due. An idle worker is woken to learn the new due time.
local function schedule(base, id, jk, due, status)
  redis.call('ZADD', base .. ':scheduled', due, id)
  -- due_ms: where the history measures its wait from (lib/stats.lua)
  if jk then redis.call('HSET', jk, 'status', status, 'due_ms', due) end
  wake(base)
end

-- A job with ordering key `key` enters the queue: true if it holds the key (it becomes ready:
-- the line was empty, or it is the holder itself, a retry falling due), else it waits in line.
local function join_line(base, id, key)
  local list = order_key(base, key)
  if redis.call('LINDEX', list, 0) == id or redis.call('RPUSH', list, id) == 1 then return true end
  redis.call('INCR', base .. ':ordered')
  return false
end

-- A job enters the queue now (new, falling due, replayed): ready unless another job holds its
-- key (`key` false: no ordering key). jk false: the caller wrote status 'queued'; part: its
-- partition as ready() takes it.
local function admit(base, id, jk, prio, key, part)
  if key and not join_line(base, id, key) then
    if jk then redis.call('HSET', jk, 'status', 'queued') end
    return
  end
  ready(base, id, jk, prio, false, part)
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
-- append a field name and value to a list of them
local function add_fields(list, name, value)
  list[#list + 1] = name
  list[#list + 1] = value
end

-- a job due at `due` may start until this unix ms (false: no deadline): `expires_at` (unix ms) if
-- given, else `expires_in` ms after its due time (each '' , '0' or nil for none)
local function deadline(due, expires_in, expires_at)
  local at = tonumber(expires_at or '0') or 0
  if at > 0 then return at end
  local within = tonumber(expires_in or '0') or 0
  return within > 0 and due + within
end

-- create_job: a new job record (the message, its task's name, and the counters the other scripts
-- rely on), its "enqueued" event and its count in the history (lib/stats.lua). `extra` is a list of name, value pairs stored with it.
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

local function create_job(base, id, jk, body, prio, now, task, extra)
  if task and task ~= '' then add_fields(extra, 'task', task) end
  -- deliveries and lost are left out: absent reads as 0 (a field less is ~50 bytes of a hash table)
  redis.call('HSET', jk, 'msg', body, 'priority', prio, 'enqueued_ms', now, unpack(extra))
  emit(base, 'enqueued', id, task, '1')
  stats_count(base, now, task, 'e')
end

-- a msgpack str header for a string of n bytes
local function str_header(n)
  if n < 32 then return string.char(0xa0 + n) end
  if n < 256 then return string.char(0xd9, n) end
  return string.char(0xda, math.floor(n / 256), n % 256)
end

-- a packed message (a msgpack map) with its "id" entry naming job `to` instead of `from`: a
-- debounced call's message goes to the job that holds the key (the entry's value is
-- length-prefixed, so only it changes); unchanged if it has no such entry
local function with_id(msg, from, to)
  local entry = '\162id' .. str_header(#from) .. from
  local at = string.find(msg, entry, 1, true)
  if not at then return msg end
  return string.sub(msg, 1, at - 1) .. '\162id' .. str_header(#to) .. to .. string.sub(msg, at + #entry)
end
-- Backpressure (max_ready): a producer refused for a full queue marks it full; a fetch that takes
-- jobs off a full queue's ready lists gives a token per job taken to the producers blocked on room.

-- ready jobs of every priority, and those waiting behind an ordering key (lib/order.lua),
-- parked by their task's limits (lib/gate.lua) or in their partition's lanes (lib/part.lua)
local function ready_count(base)
  local c = redis.call('MGET', base .. ':ordered', base .. ':parked', base .. ':laned')
  local n = (tonumber(c[1] or '0') or 0) + (tonumber(c[2] or '0') or 0) + (tonumber(c[3] or '0') or 0)
  for prio = 0, 9 do n = n + redis.call('LLEN', ready_key(base, prio)) end
  return n
end

-- whether `adding` more ready jobs would pass max_ready (0 = no limit); marks the queue full if so
local function refuse_full(base, max_ready, adding)
  if max_ready <= 0 or ready_count(base) + adding <= max_ready then return false end
  redis.call('SET', base .. ':full', '1', 'PX', 60000)
  return true
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

-- The lease of a job leaving its worker (it ended, is retried, given back or recovered): out of
-- the leases and reserved sets (and its task's, if the task has max_running=), token deleted
-- (with the fields in `also`, a list of names; false: the caller rewrites the record), so the last
-- holder's late calls are refused.
-- `gate` and `part` are the job's fields of those names when the caller has read them (nil: read
-- them here); a job of a partition frees its slot there (lib/part.lua).
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

-- what a move reads of a job, in this order (placed_of)
local PLACE_FIELDS = {'status', 'priority', 'gate', 'part', 'order', 'expires_in', 'expires_at', 'debounce_by',
  'enqueued_ms'}

local function placed_of(jk)
  local f = redis.call('HMGET', jk, unpack(PLACE_FIELDS))
  return {status = f[1], prio = priority_of(f[2]), gate = f[3], part = f[4], order = f[5], expires_in = f[6],
    expires_at = f[7], debounce_by = f[8], enqueued = f[9]}
end

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

-- A job not started (`w`: placed_of) taken back for a move: out of its place (unplace), or, if
-- reserved, its lease dropped ('reserved'); with `leave_line`, out of its ordering key's line too
-- (a job holding the key passes it on: it joins the line again where it is placed).
local function take_back(base, id, jk, w, leave_line)
  local where
  if w.status == 'reserved' then
    drop_lease(base, id, jk, nil, w.gate, w.part)
    where = 'reserved'
  else
    where = unplace(base, id, w.status, w.prio, w.gate, w.part)
  end
  if leave_line and w.order then release_order(base, id, w.order) end
  return where
end

-- A job taken back (take_back with leave_line) placed again, due at `due`: scheduled, or entering
-- the queue now (at the back of its ordering key's line, if it has one). A deadline given in
-- seconds (expires_in) counts from the new due time; one given as a datetime stays.
local function place_again(base, id, jk, w, due, now)
  if w.expires_in then
    local by = deadline(due, w.expires_in, w.expires_at)
    if by then redis.call('HSET', jk, 'expires_ms', by) end
  end
  if due > now then
    -- its place among jobs of its ordering key due at the same ms (lib/promote.lua)
    if w.order then redis.call('HSET', jk, 'oseq', redis.call('INCR', base .. ':oseq')) end
    -- a retry waiting (failed) keeps its status: its next attempt is only due at another time
    schedule(base, id, jk, due, w.status == 'failed' and 'failed' or 'scheduled')
  else
    admit(base, id, jk, w.prio, w.order, w.part or false)
  end
end
local now = now_ms()
local base = string.sub(KEYS[3], 1, -#':scheduled' - 1)
local id, jk = ARGV[1], KEYS[1]
local wait, most = tonumber(ARGV[15] or '0') or 0, tonumber(ARGV[16] or '0') or 0

-- the key's job not started yet moves to now + wait (never past its cap) with this call's message;
-- false if it started or ended (a new job then takes the key)
local function debounce(existing)
  local ejk = job_key(base, existing)
  local w = placed_of(ejk)
  if w.status ~= 'queued' and w.status ~= 'scheduled' then return false end
  local cap = tonumber(w.debounce_by or '') or (most > 0 and (tonumber(w.enqueued or '') or now) + most)
  local due = now + wait
  if cap and due > cap then due = math.max(cap, now) end
  redis.call('HSET', ejk, 'msg', with_id(ARGV[2], id, existing))
  if due <= now and w.status == 'queued' then return true end  -- due now and queued: it keeps its place
  take_back(base, existing, ejk, w, true)
  place_again(base, existing, ejk, w, due, now)
  return true
end

if ARGV[5] == '1' then
  local existing = redis.call('GET', KEYS[5])
  if existing and (wait <= 0 or existing == id or debounce(existing)) then return {existing, 0} end
end
if redis.call('EXISTS', jk) == 1 then return {id, 0} end
local prio = priority_of(ARGV[6])
local due = tonumber(ARGV[4])
if due == 0 then due = now + tonumber(ARGV[3]) end
if wait > 0 then due = now + wait end
local later = due > now
if not later and refuse_full(base, tonumber(ARGV[7] or '0') or 0, 1) then return {id, -1} end
local extra = {'status', later and 'scheduled' or 'queued'}
if later then add_fields(extra, 'due_ms', due) end  -- the history's wait counts from it
if ARGV[5] == '1' then
  redis.call('SET', KEYS[5], id)  -- a key held after its job ended (key ttl) is taken without its ttl
  add_fields(extra, 'dedup', KEYS[5])
  local hold = tonumber(ARGV[14] or '0') or 0
  if hold > 0 then add_fields(extra, 'key_ttl', hold) end
  if wait > 0 and most > 0 then add_fields(extra, 'debounce_by', now + most) end
end
if ARGV[17] == 'a' then add_fields(extra, 'amo', '1') end
local order = ARGV[8] ~= '' and ARGV[8]
if order then
  add_fields(extra, 'order', order)
  -- due later: its place among jobs due at the same ms (lib/promote.lua)
  if later then add_fields(extra, 'oseq', redis.call('INCR', base .. ':oseq')) end
end
if ARGV[9] and ARGV[9] ~= '' then add_fields(extra, 'gate', ARGV[9]) end
local expires = deadline(due, ARGV[11], ARGV[12])
if expires then add_fields(extra, 'expires_ms', expires) end
-- a deadline in ms after the due time is kept as given too: a move counts it from the new due time
if expires and (tonumber(ARGV[12] or '0') or 0) <= 0 then add_fields(extra, 'expires_in', ARGV[11]) end
local part = ARGV[13] ~= '' and ARGV[13]
if part then add_fields(extra, 'part', part) end
create_job(base, id, jk, ARGV[2], prio, now, ARGV[10], extra)  -- one write of the record, status included
if later then
  schedule(base, id, false, due, 'scheduled')
else
  admit(base, id, false, prio, order, part or false)
end
return {id, 1}
