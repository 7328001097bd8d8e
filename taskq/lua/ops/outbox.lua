#!lua flags=allow-oom
-- outbox: the workflow steps of one queue that ended with successors still to tell. lib/finish.lua
-- adds each to the sorted set <base>:outbox (score: when it ended), in the script of its end; an
-- entry stays until a worker has told every successor (taskq/worker/continuer.py), so one that
-- dies half-way leaves it to the next. allow-oom: it only reads, or frees.
-- KEYS[1]  <ns>:{q}   the queue's base
-- ARGV: 'read', min age ms, n, then ids: the steps named, else the oldest n entries at least
--   min age ms old (the worker that ended a step tells its successors at once; what is older was
--   left by one that died);
--   or 'done', then id, score pairs: those entries leave, unless the step ended again since
--   (its score changed: the newer end is still to tell).
-- Returns for 'read' 7 values per step: id, score, status, packed result, children, task, reason
-- (false where the record is gone); for 'done' the number of entries removed.
-- @include lib/now
local base = KEYS[1]
local outbox = base .. ':outbox'
if ARGV[1] == 'done' then
  local n = 0
  for i = 2, #ARGV, 2 do
    if redis.call('ZSCORE', outbox, ARGV[i]) == ARGV[i + 1] then
      n = n + redis.call('ZREM', outbox, ARGV[i])
    end
  end
  return n
end
local entries = {}
if #ARGV > 3 then
  for i = 4, #ARGV do
    local score = redis.call('ZSCORE', outbox, ARGV[i])
    if score then
      entries[#entries + 1] = ARGV[i]
      entries[#entries + 1] = score
    end
  end
else
  entries = redis.call('ZRANGEBYSCORE', outbox, '-inf', now_ms() - tonumber(ARGV[2]), 'WITHSCORES', 'LIMIT', 0,
    tonumber(ARGV[3]))
end
local out = {}
for i = 1, #entries, 2 do
  local f = redis.call('HMGET', base .. ':job:' .. entries[i], 'status', 'result', 'children', 'task', 'reason')
  out[#out + 1] = entries[i]
  out[#out + 1] = entries[i + 1]
  for j = 1, 5 do out[#out + 1] = f[j] end
end
return out
