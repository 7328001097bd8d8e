-- The one place a job becomes ready: its id goes onto the ready list of its priority (at the
-- back, or at the front when it is given back), its status becomes 'queued', and an idle worker
-- is woken. A job due later waits in the scheduled set instead (schedule below).
-- @include lib/keys
-- @include lib/wake
local function ready(base, id, jk, prio, front)  -- jk false: the caller wrote status 'queued'
  if jk then redis.call('HSET', jk, 'status', 'queued') end
  redis.call(front and 'LPUSH' or 'RPUSH', ready_key(base, prio), id)
  wake(base)
end

-- Many new jobs of one priority at once (bulk enqueue), in order, their status already 'queued'.
local function ready_many(base, prio, ids)
  local list = ready_key(base, prio)
  for i = 1, #ids, 1000 do  -- unpack() has a bounded stack
    redis.call('RPUSH', list, unpack(ids, i, math.min(i + 999, #ids)))
  end
  if #ids > 0 then wake(base) end
end

-- A job due at `due` (unix ms) waits in the scheduled set, with status 'scheduled' (or
-- 'failed': an attempt failed and its retry waits; jk false: the caller wrote the status);
-- fetch and promote make it ready when due. An idle worker is woken to learn the new due time.
local function schedule(base, id, jk, due, status)
  redis.call('ZADD', base .. ':scheduled', due, id)
  if jk then redis.call('HSET', jk, 'status', status) end
  wake(base)
end
