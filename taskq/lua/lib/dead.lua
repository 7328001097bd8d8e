-- Dead letters. dead_ttl (ms) and dead_max are the retention policy, given by each script's caller.
-- @include lib/keys
-- @include lib/finish
local dead_ttl, dead_max = 7 * 86400000, 10000

-- A job ends dead: finish() with its reason and error text (nil keeps the stored one), into the
-- dead-letter set, which is capped by age and by count (the oldest leave first, with their records).
local function bury(base, id, jk, now, reason, error, links)
  local fields = {'reason', reason}
  if error then fields[3], fields[4] = 'error', error end
  finish(base, id, jk, 'dead', now, dead_ttl, fields, nil, links)
  local dead = base .. ':dead'
  redis.call('ZADD', dead, now, id)
  redis.call('ZREMRANGEBYSCORE', dead, '-inf', now - dead_ttl)
  local excess = redis.call('ZCARD', dead) - dead_max
  if excess > 0 then
    local oldest = redis.call('ZPOPMIN', dead, excess)  -- member, score, member, score...
    for i = 1, #oldest, 2 do
      if oldest[i] ~= id then redis.call('DEL', job_key(base, oldest[i])) end
    end
  end
end

-- An entry with no usable job record: kept for inspection as a new dead record raw-<n>, never run.
local function bury_raw(base, entry, why, now)
  local dead_id = 'raw-' .. redis.call('INCR', base .. ':seq')
  local dk = job_key(base, dead_id)
  redis.call('HSET', dk, 'msg', entry, 'status', 'dead', 'reason', why, 'finished_ms', now, 'priority', 0)
  redis.call('PEXPIRE', dk, dead_ttl)
  redis.call('ZADD', base .. ':dead', now, dead_id)
end
