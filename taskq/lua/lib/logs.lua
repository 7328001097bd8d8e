-- A job's log lines (current_job().log() and its task's stdlib records at INFO and above, sent by
-- its worker in batches: ops/logs.lua, and with a progress report: ops/progress.lua): a list
-- <base>:logs:<id> of '<unix ms> <LEVEL> <text>' entries, its newest LOG_LINES kept. It expires
-- with the record: lib/finish.lua sets both (the record's 'logs' field, set with a live job's
-- first line, tells it there is a list); lines that come after the end take the record's
-- remaining time, and none are stored for a job with no record (expired, purged).
-- @include lib/keys

local LOG_LINES = 100  -- docs/protocol.md §3; taskq/worker/joblogs.py cuts its buffer at the same

-- append ARGV[from .. from + n - 1] to the job's lines; returns how many were stored
local function append_logs(base, id, lines, from, n)
  if n <= 0 then return 0 end
  local jk = job_key(base, id)
  local ttl = redis.call('PTTL', jk)
  if ttl == -2 then return 0 end
  local key = base .. ':logs:' .. id
  local size = 0
  for i = from, from + n - 1, 200 do  -- unpack's stack limit: 200 at a time
    size = redis.call('RPUSH', key, unpack(lines, i, math.min(i + 199, from + n - 1)))
  end
  if size > LOG_LINES then redis.call('LTRIM', key, -LOG_LINES, -1) end
  if ttl > 0 then
    redis.call('PEXPIRE', key, ttl)
  elseif size == n then  -- a live job's first lines: its end must expire them (lib/finish.lua)
    redis.call('HSET', jk, 'logs', '1')
  end
  return n
end
