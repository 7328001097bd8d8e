-- Promotion: due scheduled jobs become ready (fetch does it first, beat for queues nobody fetches).
-- @include lib/order
-- @include lib/dead
-- Move up to `limit` due scheduled jobs to ready (each by its own priority); returns how many.
-- A job with an ordering key joins its key's line now; jobs due at the same ms join in the order
-- they were enqueued (their field oseq: the set alone would order them by id).
local function promote(base, now, limit)
  local scheduled = base .. ':scheduled'
  local due = redis.call('ZRANGEBYSCORE', scheduled, '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
  local entries = {}
  for i = 1, #due, 2 do
    local id = due[i]
    redis.call('ZREM', scheduled, id)
    local jk = job_key(base, id)
    if redis.call('EXISTS', jk) == 1 and not is_hash(jk) then
      bury_raw(base, id, 'unknown_job: scheduled entry whose job record is not a hash', now)
    else
      local f = redis.call('HMGET', jk, 'priority', 'order', 'oseq', 'part')
      entries[#entries + 1] = {id = id, jk = jk, prio = priority_of(f[1]), order = f[2],
        due = tonumber(due[i + 1]), seq = tonumber(f[3] or '0') or 0, part = f[4]}
    end
  end
  if #entries > 1 then
    table.sort(entries, function(a, b)
      if a.due ~= b.due then return a.due < b.due end
      return a.seq < b.seq
    end)
  end
  for _, e in ipairs(entries) do admit(base, e.id, e.jk, e.prio, e.order, e.part) end
  return #due / 2
end

-- ms until the next scheduled job is due (0 if overdue), or -1 if none is scheduled
local function next_due(base, now)
  local first = redis.call('ZRANGE', base .. ':scheduled', 0, 0, 'WITHSCORES')
  if not first[2] then return -1 end
  return math.max(0, tonumber(first[2]) - now)
end
