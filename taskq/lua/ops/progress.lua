#!lua
-- progress: a running job reports how far it got; only its current delivery may write.
-- KEYS[1] <ns>:{q}:job:<id>  hash; the queue's base and the id are read from its name
-- ARGV: token, fraction (0..1), text, then the job's log lines written since its last batch
--   (lib/logs.lua; stored whatever the token: the run wrote them)
-- Returns 1 if stored, 0 if the token is no longer current (lease lost, job finished).
-- @include lib/now
-- @include lib/events
-- @include lib/logs
local base, id = string.match(KEYS[1], '^(.*):job:(.*)$')
append_logs(base, id, ARGV, 4, #ARGV - 3)
local f = redis.call('HMGET', KEYS[1], 'token', 'task', 'attempt')
if f[1] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'progress', ARGV[2], 'progress_text', ARGV[3], 'progress_ms', now_ms())
emit(base, 'progress', id, f[2], f[3], {'progress', ARGV[2], 'text', ARGV[3]})
return 1
