-- The one place a job becomes ready: its id goes onto the ready list of its priority (at the
-- back, or at the front when it is given back), or in a fair queue onto its partition's lane of
-- that priority (lib/part.lua), its status becomes 'queued', and an idle worker is woken. A job
-- due later waits in the scheduled set instead (schedule below).
-- @include lib/keys
-- @include lib/wake
-- @include lib/part

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

-- Many new jobs of one priority and partition at once (bulk enqueue), in order, their status
-- already 'queued'.
local function ready_many(base, prio, ids, part)
  if #ids == 0 then return end
  if is_fair(base) or (part and redis.call('ZSCORE', base .. ':backlog', part)) then
    lane_push(base, part or '', prio, ids, false)
  else
    local list = ready_key(base, prio)
    for i = 1, #ids, 1000 do  -- unpack() has a bounded stack
      redis.call('RPUSH', list, unpack(ids, i, math.min(i + 999, #ids)))
    end
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
