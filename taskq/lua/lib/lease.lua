-- The lease of a job leaving its worker (it ended, is retried, given back or recovered): out of
-- the leases and reserved sets (and its task's, if the task has max_running=), token deleted
-- (with the fields in `also`, a list of names; false: the caller rewrites the record), so the last
-- holder's late calls are refused.
-- `gate` is the job's field of that name when the caller has read it (nil: read it here).
-- @include lib/keys
-- @include lib/wake
local function drop_lease(base, id, jk, also, gate)
  redis.call('ZREM', base .. ':leases', id)
  -- a fetch refused jobs for the queue's max_running: this freed slot wakes an idle worker
  if redis.call('DEL', base .. ':capped') == 1 then wake(base) end
  redis.call('SREM', base .. ':reserved', id)
  if gate == nil then gate = redis.call('HGET', jk, 'gate') end
  if gate then
    -- a job of this task waits for a free slot of its task: this one wakes an idle worker
    local gk = gate_key(base, gate)
    if redis.call('SREM', gk .. ':leases', id) == 1 and redis.call('EXISTS', gk .. ':held') == 1 then wake(base) end
  end
  if also == false then return end  -- the caller writes the record anew (lib/finish.lua)
  if also then redis.call('HDEL', jk, 'token', unpack(also)) else redis.call('HDEL', jk, 'token') end
end
