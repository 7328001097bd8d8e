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
--       partition ('' or absent = none: lib/part.lua)
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
-- 'failed': an attempt failed and its retry waits; jk false: the caller wrote the status);
-- fetch and promote make it ready when due. An idle worker is woken to learn the new due time.
local function schedule(base, id, jk, due, status)
  redis.call('ZADD', base .. ':scheduled', due, id)
  if jk then redis.call('HSET', jk, 'status', status) end
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
-- rely on), and its "enqueued" event. `extra` is a list of name, value pairs stored with it.
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

local function create_job(base, id, jk, body, prio, now, task, extra)
  if task and task ~= '' then add_fields(extra, 'task', task) end
  -- deliveries and lost are left out: absent reads as 0 (a field less is ~50 bytes of a hash table)
  redis.call('HSET', jk, 'msg', body, 'priority', prio, 'enqueued_ms', now, unpack(extra))
  emit(base, 'enqueued', id, task, '1')
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

local now = now_ms()
local base = string.sub(KEYS[3], 1, -#':scheduled' - 1)
local id, jk = ARGV[1], KEYS[1]
if ARGV[5] == '1' then
  local existing = redis.call('GET', KEYS[5])
  if existing then return {existing, 0} end
end
if redis.call('EXISTS', jk) == 1 then return {id, 0} end
local prio = priority_of(ARGV[6])
local due = tonumber(ARGV[4])
if due == 0 then due = now + tonumber(ARGV[3]) end
local later = due > now
if not later and refuse_full(base, tonumber(ARGV[7] or '0') or 0, 1) then return {id, -1} end
local extra = {'status', later and 'scheduled' or 'queued'}
if ARGV[5] == '1' then
  redis.call('SET', KEYS[5], id)
  add_fields(extra, 'dedup', KEYS[5])
end
local order = ARGV[8] ~= '' and ARGV[8]
if order then
  add_fields(extra, 'order', order)
  -- due later: its place among jobs due at the same ms (lib/promote.lua)
  if later then add_fields(extra, 'oseq', redis.call('INCR', base .. ':oseq')) end
end
if ARGV[9] and ARGV[9] ~= '' then add_fields(extra, 'gate', ARGV[9]) end
local expires = deadline(due, ARGV[11], ARGV[12])
if expires then add_fields(extra, 'expires_ms', expires) end
local part = ARGV[13] ~= '' and ARGV[13]
if part then add_fields(extra, 'part', part) end
create_job(base, id, jk, ARGV[2], prio, now, ARGV[10], extra)  -- one write of the record, status included
if later then
  schedule(base, id, false, due, 'scheduled')
else
  admit(base, id, false, prio, order, part or false)
end
return {id, 1}
