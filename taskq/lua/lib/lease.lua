-- The lease of a job leaving its worker (it ended, is retried, given back or recovered): out of
-- the leases and reserved sets, token deleted (with the fields in `also`, a list of names), so the
-- last holder's late calls are refused.
-- @include lib/wake
local function drop_lease(base, id, jk, also)
  redis.call('ZREM', base .. ':leases', id)
  -- a fetch refused jobs for the queue's max_running: this freed slot wakes an idle worker
  if redis.call('DEL', base .. ':capped') == 1 then wake(base) end
  redis.call('SREM', base .. ':reserved', id)
  if also then redis.call('HDEL', jk, 'token', unpack(also)) else redis.call('HDEL', jk, 'token') end
end
