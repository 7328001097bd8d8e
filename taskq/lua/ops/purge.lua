#!lua flags=allow-oom
-- purge: delete dead-lettered jobs for good (only ids still in the dead-letter set).
-- allow-oom: it only frees memory, so it must work when Redis is full.
-- KEYS[1]  <ns>:{q}   the queue's base
-- ARGV: ids
-- Returns how many were deleted.
-- @include lib/keys
local base = KEYS[1]
local n = 0
for _, id in ipairs(ARGV) do
  if redis.call('ZREM', base .. ':dead', id) == 1 then
    redis.call('DEL', job_key(base, id), base .. ':done:' .. id, base .. ':logs:' .. id)
    n = n + 1
  end
end
return n
