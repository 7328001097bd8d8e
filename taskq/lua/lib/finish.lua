-- The one place a job ends (succeeded, dead or cancelled): lease dropped (with the fields in
-- `gone`), final status and finished_ms plus `fields` (a list of name, value), the record expires
-- after `ttl` ms, the deduplication key is released, and a result() waiter is woken. `dedup` and
-- `waiter` are the job's fields of those names when the caller has read them (else false: read).
-- @include lib/lease
local function finish(base, id, jk, status, now, ttl, fields, gone, dedup, waiter)
  drop_lease(base, id, jk, gone)
  if dedup == nil then dedup, waiter = unpack(redis.call('HMGET', jk, 'dedup', 'waiter')) end
  redis.call('HSET', jk, 'status', status, 'finished_ms', now, unpack(fields))
  redis.call('PEXPIRE', jk, ttl)
  if dedup and redis.call('GET', dedup) == id then redis.call('DEL', dedup) end
  if waiter then
    local done = base .. ':done:' .. id
    redis.call('RPUSH', done, '1')
    redis.call('PEXPIRE', done, ttl)
  end
end
