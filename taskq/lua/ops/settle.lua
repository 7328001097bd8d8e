#!lua flags=allow-oom
-- settle: record the outcomes of finished runs of one queue, in one call: successes, retries and
-- dead letters. Each acts only if the run's lease token is still the job's (else: lease lost).
-- allow-oom: it ends leases, so running jobs drain at maxmemory; a retry or dead letter adds only
-- its error text (bounded by the jobs leased), and a success frees its lease and dedup key.
-- KEYS[1]  <ns>:{q}   the queue's base
-- ARGV: result ttl ms, dead ttl ms, dead max, refill (most jobs to lease as running for the
--   slots the outcomes freed, 0: none; a worker asks when a cap holds the queue, so a freed slot
--   is filled without another call), then if refill > 0 the taker's fields (lib/take.lua), then
--   per outcome, by its first value:
--   'ok',    id, token, packed result, max attempts (kept in the succeeded record; 0: unknown)
--   'retry', id, token, packed next message, delay ms, error text, its first line, next attempt,
--            its partition's signal
--   'dead',  id, token, reason, error text, packed message ('' = keep the stored one), signal
--   then, after every outcome, per job with log lines not sent yet: 'logs', id, n, its n lines
--   (lib/logs.lua: stored after its end, so they take its record's expiry).
--   A signal tells the job's partition (lib/part.lua) what the run said of its partner: '' nothing,
--   'b<ms>' back off that long and cut an adaptive limit (RateLimited(partition=True)), 's' cut an
--   adaptive limit (a time limit); a success grows an adaptive limit.
-- Returns one code per outcome: 1 done, 0 lease lost (nothing written), 2 cancelled meanwhile
-- (a retry of a job cancelled while it ran: it ends cancelled instead); then, with refill, the
-- jobs leased (6 values each, as fetch.lua returns them), at most one per outcome recorded.
-- @include lib/now
-- @include lib/ready
-- @include lib/dead
-- @include lib/take
-- @include lib/job
-- @include lib/logs
local now = now_ms()
local base = KEYS[1]
local result_ttl = tonumber(ARGV[1])
dead_ttl, dead_max = tonumber(ARGV[2]), tonumber(ARGV[3])
local refill = tonumber(ARGV[4]) or 0
local t, first = nil, 5
if refill > 0 then t, first = new_taker(base, now, ARGV, 5) end
local codes = {}
stats_batch()  -- the batch's history in one write per minute touched (stats_flush below)
local freed = 0
local STRIDE = {ok = 5, retry = 9, dead = 7}

local function signal(part, said)  -- what a failed run said of its partition's partner
  if not part or said == '' then return end
  if string.sub(said, 1, 1) == 'b' then part_backoff(base, part, now + (tonumber(string.sub(said, 2)) or 0)) end
  adapt(base, part, false, redis.call('SCARD', part_key(base, part) .. ':leases'))  -- what the partner bore
end
local function failed(links)  -- a run that raised: a failed attempt in the history, and its runtime
  stats_ran(base, now, links.task, links.started)
  stats_count(base, now, links.task, 'f')
end
local i = first
while i <= #ARGV and ARGV[i] ~= 'logs' do
  local kind, id, token = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local jk = job_key(base, id)
  local f = redis.call('HMGET', jk, 'token', 'cancel', 'priority', 'abort', unpack(LINKS))
  local code = 1
  if f[1] ~= token then
    code = 0
  elseif kind == 'ok' then
    local fields = {'result', ARGV[i + 3]}
    if ARGV[i + 4] ~= '0' then add_fields(fields, 'max_attempts', ARGV[i + 4]) end
    local links = links_of(f, 5)
    stats_ran(base, now, links.task, links.started)
    finish(base, id, jk, 'succeeded', now, result_ttl, fields, nil, links)
    if links.part then adapt(base, links.part, true) end
  elseif kind == 'dead' then
    if ARGV[i + 5] ~= '' then redis.call('HSET', jk, 'msg', ARGV[i + 5]) end
    local links = links_of(f, 5)
    failed(links)
    bury(base, id, jk, now, ARGV[i + 3], ARGV[i + 4], links)
    signal(links.part, ARGV[i + 6])
  elseif f[2] then  -- a retry, but the job was cancelled while it ran: it ends here
    local fields = {'error', ARGV[i + 5]}
    if f[4] then add_fields(fields, 'reason', 'aborted: ' .. f[4]) end
    local links = links_of(f, 5)
    failed(links)
    finish(base, id, jk, 'cancelled', now, result_ttl, fields, nil, links)
    code = 2
  else
    local links = links_of(f, 5)
    drop_lease(base, id, jk, {'progress', 'progress_text', 'progress_ms'}, links.gate, links.part)  -- the next attempt starts over
    local delay = tonumber(ARGV[i + 4])
    failed(links)
    stats_count(base, now, links.task, 'r')
    -- due_ms: the history's wait of the next attempt counts from it (lib/stats.lua)
    redis.call('HSET', jk, 'msg', ARGV[i + 3], 'error', ARGV[i + 5], 'attempt', ARGV[i + 7], 'due_ms', now + math.max(0, delay))
    signal(links.part, ARGV[i + 8])
    emit(base, 'retrying', id, links.task, links.attempt,
      ran_for({'error', ARGV[i + 6], 'delay_ms', delay}, links.started, now))
    if delay <= 0 then
      ready(base, id, jk, priority_of(f[3]), false, links.part)  -- it keeps its ordering key: it holds it
    else
      schedule(base, id, jk, now + delay, 'failed')
    end
  end
  codes[#codes + 1] = code
  if code ~= 0 then freed = freed + 1 end
  i = i + (STRIDE[kind] or 6)
end
while i <= #ARGV do  -- 'logs', id, n, lines
  local n = tonumber(ARGV[i + 2])
  append_logs(base, ARGV[i + 1], ARGV, i + 3, n)
  i = i + 3 + n
end
if t and freed > 0 then
  take(t, math.min(refill, freed), 0, codes)
  after_take(t)
end
stats_flush()
return codes
