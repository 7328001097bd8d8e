#!lua
-- promote: move due scheduled jobs to ready (what beat does for queues no worker fetches from).
-- KEYS[1]  <ns>:{q}   the queue's base
-- ARGV: most jobs to move, dead ttl ms
-- Returns {jobs moved, ms until the next scheduled job (-1 if none)}.
-- @include lib/now
-- @include lib/promote
local now = now_ms()
dead_ttl = tonumber(ARGV[2])
local moved = promote(KEYS[1], now, tonumber(ARGV[1]))
return {moved, next_due(KEYS[1], now)}
