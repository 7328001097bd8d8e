#!lua flags=allow-oom
-- purge: delete dead-lettered jobs for good (only ids still in the dead-letter set).
-- allow-oom: it only frees memory, so it must work when Redis is full.
-- KEYS[1] taskq:{q}:dead  zset
-- ARGV: job key prefix, done key prefix, then ids
-- Returns how many were deleted.
local n = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  if redis.call('ZREM', KEYS[1], id) == 1 then
    redis.call('DEL', ARGV[1] .. id, ARGV[2] .. id)
    n = n + 1
  end
end
return n
