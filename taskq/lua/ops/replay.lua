#!lua
-- replay: put a dead job back on its ready list with a fresh message (attempts reset); a job with
-- an ordering key goes to the back of its key's line.
-- KEYS[1]  <ns>:{q}   the queue's base
-- ARGV: id, packed message
-- Returns 1 if replayed, 0 if the id is not in the dead-letter set.
-- @include lib/order
-- @include lib/events
local base, id = KEYS[1], ARGV[1]
local jk = job_key(base, id)
if redis.call('ZREM', base .. ':dead', id) == 0 then return 0 end
local f = redis.call('HMGET', jk, 'priority', 'order', 'task')
local prio = priority_of(f[1])
redis.call('PERSIST', jk)
redis.call('DEL', base .. ':done:' .. id)  -- the stale wake-up of its earlier end
redis.call('HSET', jk, 'msg', ARGV[2], 'lost', 0, 'priority', prio)
redis.call('HDEL', jk, 'reason', 'error', 'finished_ms', 'cancel', 'token', 'started_ms',
  'progress', 'progress_text', 'progress_ms', 'attempt', 'abort')
emit(base, 'enqueued', id, f[3], '1', {'reason', 'replayed'})
admit(base, id, jk, prio, f[2])  -- at the back of its ordering key's line, if it has one
return 1
