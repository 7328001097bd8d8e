-- Ordering keys: jobs of one queue with the same ordering key run one at a time, in the order
-- they entered the queue (a delayed job enters when it falls due). The key's list
-- <base>:order:<key> holds them, the one holding the key first: only that job is ever ready,
-- leased or waiting for its retry. The others wait, counted in <base>:ordered; the holder ends
-- (succeeds, is dead-lettered or cancelled) and the next in line becomes ready.
-- @include lib/ready

-- A job with ordering key `key` enters the queue: true if it holds the key (it becomes ready:
-- the line was empty, or it is the holder itself, a retry falling due), else it waits in line.
local function join_line(base, id, key)
  local list = order_key(base, key)
  if redis.call('LINDEX', list, 0) == id or redis.call('RPUSH', list, id) == 1 then return true end
  redis.call('INCR', base .. ':ordered')
  return false
end

-- A job enters the queue now (new, falling due, replayed): ready unless another job holds its
-- key (`key` false: no ordering key). jk false: the caller wrote status 'queued'; part: its
-- partition as ready() takes it.
local function admit(base, id, jk, prio, key, part)
  if key and not join_line(base, id, key) then
    if jk then redis.call('HSET', jk, 'status', 'queued') end
    return
  end
  ready(base, id, jk, prio, false, part)
end

-- A job with ordering key `key` ended: if it held the key, the next in line becomes ready (one
-- whose record is gone or that ended meanwhile is passed over); else it leaves the line.
local function release_order(base, id, key)
  local list = order_key(base, key)
  if redis.call('LINDEX', list, 0) ~= id then
    if redis.call('LREM', list, 1, id) > 0 then redis.call('DECR', base .. ':ordered') end
    return
  end
  redis.call('LPOP', list)
  while true do
    local next_id = redis.call('LINDEX', list, 0)
    if not next_id then return end
    redis.call('DECR', base .. ':ordered')
    local f = redis.pcall('HMGET', job_key(base, next_id), 'status', 'priority', 'part')
    if not f.err and f[1] == 'queued' then
      ready(base, next_id, false, priority_of(f[2]), false, f[3])
      return
    end
    redis.call('LPOP', list)
  end
end
