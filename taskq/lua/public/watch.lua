#!lua flags=allow-oom
-- GENERATED from taskq/lua/ops/watch.lua and the taskq/lua/lib/ files it includes:
-- edit those, then run `make lua`.
-- watch: read a job's outcome and, if it has none yet, ask its final script to
-- push a wake-up token to <ns>:{q}:done:<id> (so result() blocks instead of polling).
-- KEYS[1] <ns>:{q}:job:<id>   hash
-- Returns {status, result, error, reason} or false if there is no such job.
local f = redis.call('HMGET', KEYS[1], 'status', 'result', 'error', 'reason')
if not f[1] then return false end
if f[1] ~= 'succeeded' and f[1] ~= 'dead' and f[1] ~= 'cancelled' then
  redis.call('HSET', KEYS[1], 'waiter', '1')
end
return f
