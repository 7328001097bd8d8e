-- The one place a job ends (succeeded, dead or cancelled): lease dropped (with the fields in
-- `gone`), final status and finished_ms plus `fields` (a list of name, value), the record expires
-- after `ttl` ms, the deduplication key is released, the ordering key passes to the next job in
-- line, a result() waiter is woken, the event (its status, with its reason) is appended, and a
-- workflow step with successors goes onto the queue's outbox, in this same step, so a worker
-- dying right after cannot lose their continuation (taskq/worker/continuer.py drains it).
-- `links` holds the job's LINKS fields when the caller has read them (links_of), else nil: read here.
-- @include lib/lease
-- @include lib/order
-- @include lib/events

-- the fields of a job that ending it needs, in this order: HMGET(jk, ..., unpack(LINKS))
local LINKS = {'dedup', 'waiter', 'order', 'gate', 'task', 'attempt', 'started_ms', 'children'}

local function links_of(f, i)  -- from an HMGET whose fields i.. are LINKS
  return {dedup = f[i], waiter = f[i + 1], order = f[i + 2], gate = f[i + 3], task = f[i + 4],
    attempt = f[i + 5], started = f[i + 6], children = f[i + 7]}
end

local function finish(base, id, jk, status, now, ttl, fields, gone, links)
  if links == nil then links = links_of(redis.call('HMGET', jk, unpack(LINKS)), 1) end
  drop_lease(base, id, jk, gone, links.gate)
  redis.call('HSET', jk, 'status', status, 'finished_ms', now, unpack(fields))
  redis.call('PEXPIRE', jk, ttl)
  local more = {}
  for i = 1, #fields, 2 do
    if fields[i] == 'reason' then more[1], more[2] = 'reason', fields[i + 1] end
  end
  emit(base, status, id, links.task, links.attempt, ran_for(more, links.started, now))
  if links.dedup and redis.call('GET', links.dedup) == id then redis.call('DEL', links.dedup) end
  if links.order then release_order(base, id, links.order) end
  if links.waiter then
    local done = base .. ':done:' .. id
    redis.call('RPUSH', done, '1')
    redis.call('PEXPIRE', done, ttl)
  end
  if links.children then redis.call('ZADD', base .. ':outbox', now, id) end
end
