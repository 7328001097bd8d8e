#!lua
-- stage: store steps of a workflow (taskq.chain, group, chord) in one queue, in one call. A step
-- with no parents is stored like enqueue.lua stores a job (queued, ready, its "enqueued" event);
-- one with parents is stored 'waiting', in no list, until arrive.lua has heard from each parent
-- (it expires after the waiting ttl if they never come: its producer died half-way).
-- KEYS[1]  <ns>:{q}   the queue's base
-- ARGV: waiting ttl ms, then per step 12 values: id, packed message, priority, task name, gate
--   ('' none: lib/gate.lua), parents (0: ready now), children ('' none: the successors to tell
--   when it ends, as the worker reads them), place ("<flow id> <step> <steps>"), expires in and
--   expires at (enqueue.lua's; a waiting step's deadline counts from when it becomes ready),
--   partition ('' none), flags ('a': at most once, enqueue.lua's; '' none)
-- A step that exists already is left as it is (a flow sent again after a lost reply).
-- Returns the number of steps stored.
-- @include lib/now
-- @include lib/step
-- @include lib/job
local now = now_ms()
local base = KEYS[1]
local ttl = tonumber(ARGV[1])
local n = 0
stats_batch()
for i = 2, #ARGV, 12 do
  local id, prio, gate, parents = ARGV[i], priority_of(ARGV[i + 2]), ARGV[i + 4], tonumber(ARGV[i + 5])
  local jk = job_key(base, id)
  if redis.call('EXISTS', jk) == 0 then
    local extra = {'place', ARGV[i + 7]}
    if gate ~= '' then add_fields(extra, 'gate', gate) end
    if ARGV[i + 6] ~= '' then add_fields(extra, 'children', ARGV[i + 6]) end
    local expires_in, expires_at = ARGV[i + 8], ARGV[i + 9]
    local part = ARGV[i + 10] ~= '' and ARGV[i + 10]
    if part then add_fields(extra, 'part', part) end
    if ARGV[i + 11] == 'a' then add_fields(extra, 'amo', '1') end
    if parents > 0 then
      if expires_in ~= '0' then add_fields(extra, 'expires_in', expires_in) end
      if expires_at ~= '0' then add_fields(extra, 'expires_at', expires_at) end
      add_fields(extra, 'task', ARGV[i + 3])
      redis.call('HSET', jk, 'msg', ARGV[i + 1], 'status', 'waiting', 'priority', prio, 'enqueued_ms', now,
        'parents', parents, 'waiting', parents, 'failed_in', 0, unpack(extra))
      keep_waiting(jk, ttl)
      stats_count(base, now, ARGV[i + 3], 'e')
    else
      local expires = deadline(now, expires_in, expires_at)
      if expires then add_fields(extra, 'expires_ms', expires) end
      create_job(base, id, jk, ARGV[i + 1], prio, now, ARGV[i + 3], extra)
      admit(base, id, jk, prio, false, part)
    end
    n = n + 1
  end
end
stats_flush()
return n
