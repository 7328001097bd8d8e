#!lua
-- progress: a running job reports how far it got; only its current delivery may write.
-- KEYS[1] taskq:{q}:job:<id>  hash
-- ARGV: token, fraction (0..1), text
-- Returns 1 if stored, 0 if the token is no longer current (lease lost, job finished).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'progress', ARGV[2], 'progress_text', ARGV[3], 'progress_ms', now)
return 1
