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
-- @include lib/lease
-- @include lib/order
-- @include lib/events
-- @include lib/stats

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
