-- The one place a job ends (succeeded, dead or cancelled): lease dropped (with the fields in
-- `gone`), final status and finished_ms plus `fields` (a list of name, value), the record expires
-- after `ttl` ms, the deduplication key is released, the ordering key passes to the next job in
-- line, and a result() waiter is woken. `links` holds the job's fields dedup, waiter, order and
-- gate when the caller has read them (links_of), else nil: read here.
-- @include lib/lease
-- @include lib/order
local function links_of(f, i)  -- from an HMGET whose fields i.. are dedup, waiter, order, gate
  return {dedup = f[i], waiter = f[i + 1], order = f[i + 2], gate = f[i + 3]}
end

local function finish(base, id, jk, status, now, ttl, fields, gone, links)
  if links == nil then links = links_of(redis.call('HMGET', jk, 'dedup', 'waiter', 'order', 'gate'), 1) end
  drop_lease(base, id, jk, gone, links.gate)
  redis.call('HSET', jk, 'status', status, 'finished_ms', now, unpack(fields))
  redis.call('PEXPIRE', jk, ttl)
  if links.dedup and redis.call('GET', links.dedup) == id then redis.call('DEL', links.dedup) end
  if links.order then release_order(base, id, links.order) end
  if links.waiter then
    local done = base .. ':done:' .. id
    redis.call('RPUSH', done, '1')
    redis.call('PEXPIRE', done, ttl)
  end
end
