#!lua
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
-- @include lib/now
-- @include lib/order
-- @include lib/job
-- @include lib/room
-- @include lib/place
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
