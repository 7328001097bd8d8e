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
--       partition ('' or absent = none: lib/part.lua)
-- Returns {job id, 1 if created else 0}; an existing live job with the same key wins; {id, -1} if
-- the job would be ready now but the queue holds max_ready ready jobs (nothing written).
-- @include lib/now
-- @include lib/order
-- @include lib/job
-- @include lib/room
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
