-- Promotion: due scheduled jobs become ready (fetch does it first, beat for queues nobody fetches).
-- @include lib/ready
-- @include lib/dead
-- Move up to `limit` due scheduled jobs to ready (each by its own priority); returns how many.
local function promote(base, now, limit)
  local scheduled = base .. ':scheduled'
  local due = redis.call('ZRANGEBYSCORE', scheduled, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    redis.call('ZREM', scheduled, id)
    local jk = job_key(base, id)
    if redis.call('EXISTS', jk) == 1 and not is_hash(jk) then
      bury_raw(base, id, 'unknown_job: scheduled entry whose job record is not a hash', now)
    else
      ready(base, id, jk, priority_of(redis.call('HGET', jk, 'priority')), false)
    end
  end
  return #due
end

-- ms until the next scheduled job is due (0 if overdue), or -1 if none is scheduled
local function next_due(base, now)
  local first = redis.call('ZRANGE', base .. ':scheduled', 0, 0, 'WITHSCORES')
  if not first[2] then return -1 end
  return math.max(0, tonumber(first[2]) - now)
end
