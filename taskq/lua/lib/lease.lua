-- The lease of a job leaving its worker (it ended, is retried, given back or recovered): out of
-- the leases and reserved sets, token deleted, so the last holder's late calls are refused.
local function drop_lease(base, id, jk)
  redis.call('ZREM', base .. ':leases', id)
  redis.call('SREM', base .. ':reserved', id)
  redis.call('HDEL', jk, 'token')
end
