-- The one place a job ends (succeeded, dead or cancelled): lease dropped, final status and
-- finished_ms plus `fields` (a list of name, value), the record expires after `ttl` ms, the
-- deduplication key is released, and a result() waiter is woken.
-- @include lib/lease
local function finish(base, id, jk, status, now, ttl, fields)
  drop_lease(base, id, jk)
  local f = redis.call('HMGET', jk, 'dedup', 'waiter')
  redis.call('HSET', jk, 'status', status, 'finished_ms', now, unpack(fields))
  redis.call('PEXPIRE', jk, ttl)
  if f[1] and redis.call('GET', f[1]) == id then redis.call('DEL', f[1]) end
  if f[2] then
    local done = base .. ':done:' .. id
    redis.call('RPUSH', done, '1')
    redis.call('PEXPIRE', done, ttl)
  end
end
