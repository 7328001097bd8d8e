#!lua
-- progress: a running job reports how far it got; only its current delivery may write.
-- KEYS[1] <ns>:{q}:job:<id>  hash
-- ARGV: token, fraction (0..1), text
-- Returns 1 if stored, 0 if the token is no longer current (lease lost, job finished).
-- @include lib/now
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'progress', ARGV[2], 'progress_text', ARGV[3], 'progress_ms', now_ms())
return 1
