-- The lease of a job leaving its worker (it ended, is retried, given back or recovered): out of
-- the leases and reserved sets (and its task's, if the task has max_running=), token deleted
-- (with the fields in `also`, a list of names; false: the caller rewrites the record), so the last
-- holder's late calls are refused.
-- `gate` and `part` are the job's fields of those names when the caller has read them (nil: read
-- them here); a job of a partition frees its slot there (lib/part.lua).
-- @include lib/keys
-- @include lib/wake
-- @include lib/part
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
