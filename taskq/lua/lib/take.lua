-- Leasing jobs to a worker, the one place it happens: fetch leases for free slots and prefetch,
-- settle leases again for the slots its outcomes freed (when a cap holds the queue). The queue's
-- rate limit (a sliding window of leases) and cap (its leases, running and reserved), each
-- task's own limits (lib/gate.lua) and each partition's (lib/part.lua) hold across every worker;
-- in a fair queue the partitions take turns.
-- @include lib/keys
-- @include lib/wake
-- @include lib/dead
-- @include lib/room
-- @include lib/gate
-- @include lib/events
-- @include lib/ready

-- what leasing reads of each job, in this order (f[1..11] below)
local TAKE_FIELDS = {'msg', 'status', 'lost', 'deliveries', 'gate', 'task', 'attempt', 'expires_ms', 'part',
  'enqueued_ms', 'due_ms'}

-- A job past its deadline (expires=) never starts: true if `by` (its expires_ms field) has passed,
-- and then it ends cancelled here (its record kept like a dead job's, dead_ttl); a workflow step
-- with successors joins t.ended, so the worker tells them at once (its outbox entry is the backstop).
local function expire(t, id, jk, by)
  by = tonumber(by or '')
  if not by or by >= t.now then return false end
  local children = redis.call('HGET', jk, 'children')
  finish(t.base, id, jk, 'cancelled', t.now, dead_ttl,
    {'reason', 'expired: not started by its deadline (expires=), ' .. (t.now - by) .. ' ms past it'})
  if children then t.ended[#t.ended + 1] = id end
  return true
end

-- Who leases and under which limits, from ARGV[i..]: worker id, lease ms, suspect_lost (a job
-- whose worker died this many times is always leased reserved, so the worker can run it alone),
-- rate limit n and window ms (0 0: none), max_running (0: none), number of gates G, then 4 per
-- gate: task, rate n, window ms, max_running. Returns the taker and the index after its fields.
local function new_taker(base, now, argv, i)
  local t = {base = base, now = now, worker = argv[i], lease_ms = tonumber(argv[i + 1]),
    suspect_lost = tonumber(argv[i + 2]), rate_n = tonumber(argv[i + 3]) or 0,
    rate_window = tonumber(argv[i + 4]) or 0, cap = tonumber(argv[i + 5]) or 0,
    leases = base .. ':leases', reserved = base .. ':reserved', rate_key = base .. ':rate',
    gates = {}, limited = false, capped = false, stopped = 0, ended = {}, parts = {}, n = 0, passed = 0,
    unlaned = 0}
  local gates_n = tonumber(argv[i + 6]) or 0
  for j = i + 7, i + 6 + 4 * gates_n, 4 do
    t.gates[argv[j]] = new_gate(base, argv[j], tonumber(argv[j + 1]), tonumber(argv[j + 2]), tonumber(argv[j + 3]))
  end
  return t, i + 7 + 4 * gates_n
end

-- lease one job whose TAKE_FIELDS f were read; appends it to out (a job leased running starts now)
local function lease_one(t, id, jk, f, g, out)
  local lost = tonumber(f[3] or '0') or 0
  local deliveries = (tonumber(f[4] or '0') or 0) + 1
  local token = t.worker .. ':' .. deliveries
  local running = t.run > 0 and lost < t.suspect_lost
  if running then
    t.run = t.run - 1
    redis.call('HSET', jk, 'status', 'running', 'token', token, 'started_ms', t.now, 'deliveries', deliveries)
    emit(t.base, 'started', id, f[6], f[7])
    stats_started(t.base, t.now, f[6], f[10], f[11])
  else
    redis.call('HSET', jk, 'status', 'reserved', 'token', token, 'deliveries', deliveries)
    redis.call('SADD', t.reserved, id)
  end
  redis.call('ZADD', t.leases, t.now + t.lease_ms, id)
  if t.rate_n > 0 then redis.call('ZADD', t.rate_key, t.now, id .. ':' .. deliveries) end
  if g then pass(g, t.now, id .. ':' .. deliveries, id) end
  out[#out + 1] = id
  out[#out + 1] = f[1]
  out[#out + 1] = token
  out[#out + 1] = deliveries
  out[#out + 1] = lost
  out[#out + 1] = running and 1 or 0
  return deliveries
end

-- One job that may start (TAKE_FIELDS f read, out of whichever list held it): leased (true), or
-- set aside (false): gone, expired, or over its partition's limits (to its lane, `lane` being the
-- partition whose lane it came from: back to the front there) or its task's (parked).
local function offer(t, id, jk, f, prio, lane, out)
  if f[2] == 'cancelled' then return false end  -- taken off its lists already
  if f[8] and expire(t, id, jk, f[8]) then
    t.passed = t.passed + 1
    return false
  end
  local p = f[9] or (t.fair and '')
  local s = p and part_state(t.base, p, t.now, t.parts, t.leases)
  if s and s.room <= 0 then
    part_block(t.base, p, s)
    lane_push(t.base, p, prio, {id}, lane == p)
    t.passed = t.passed + 1
    return false
  end
  local g = f[5] and t.gates[f[5]]
  if g and gate_room(g, t.now, t.leases) <= 0 then
    park(g, id)
    t.passed = t.passed + 1
    return false
  end
  local deliveries = lease_one(t, id, jk, f, g, out)
  if s then part_pass(s, t.now, id, id .. ':' .. deliveries) end
  t.n = t.n + 1
  return true
end

-- read a job for offer(); an id with no usable record is dead-lettered as a raw entry
local function fields_of(t, id, jk)
  -- one read; a key that is not a hash answers with an error (no EXISTS and TYPE per job)
  local f = redis.pcall('HMGET', jk, unpack(TAKE_FIELDS))
  if f.err or not f[1] then
    bury_raw(t.base, id, f.err and 'unknown_job: ready entry whose job record is not a hash'
      or 'unknown_job: ready entry with no job record', t.now)
    return nil
  end
  return f
end

-- lease at most `left` more jobs, running ones first; true if that cut the request
local function within(t, left)
  left = math.max(0, left)
  if t.run + t.reserve <= left then return false end
  t.reserve = math.max(0, math.min(t.reserve, left - t.run))
  t.run = math.min(t.run, left)
  return true
end

-- The partitions' lanes of one priority, in turns: a round takes one job of each partition whose
-- turn it is (a partition alone: as many as it may), then sends them to the back of the turns; a
-- partition that may not start one leaves them (part_block). One read and one write of the turns
-- per round, not per job.
local function take_lanes(t, prio, out)
  local ring = t.base .. ':ring:' .. prio
  while t.n < t.want and t.passed < 1000 do
    local turn = redis.call('ZRANGE', ring, 0, t.want - t.n - 1)
    if #turn == 0 then return end
    local again, gone = {}, {}
    for _, p in ipairs(turn) do
      if t.n >= t.want then break end  -- the rest keep their turn
      local s = part_state(t.base, p, t.now, t.parts, t.leases)
      local ids = s.room > 0 and redis.call('LPOP', s.pk .. ':' .. prio, #turn == 1 and math.min(s.room, t.want - t.n) or 1)
      if not ids then  -- out of room, or an empty lane (cancelled jobs, or jobs of another priority left)
        gone[#gone + 1] = p
        if s.room <= 0 then part_block(t.base, p, s) end
      else
        t.unlaned = t.unlaned + #ids
        if lane_left(t.base, p, #ids, false) <= 0 then gone[#gone + 1] = p else again[#again + 1] = p end
        for _, id in ipairs(ids) do
          local jk = job_key(t.base, id)
          local f = fields_of(t, id, jk)
          if f then offer(t, id, jk, f, prio, p, out) end
        end
      end
    end
    if #gone > 0 then redis.call('ZREM', ring, unpack(gone)) end
    if #again > 0 then
      local last = redis.call('INCRBY', t.base .. ':ringseq', #again)
      local scores = {}
      for i, p in ipairs(again) do
        scores[#scores + 1] = last - #again + i
        scores[#scores + 1] = p
      end
      redis.call('ZADD', ring, 'XX', unpack(scores))
    end
  end
end

-- Lease up to `run` jobs as running and `reserve` more as reserved, appending 6 values per job
-- to `out`; returns how many (none while the queue is paused). Held jobs of tasks with room go
-- first (they waited longest), then, highest priority first, the partitions' lanes in turns and
-- the ready list; a job over its task's or its partition's limits is set aside (offer).
local function take(t, run, reserve, out)
  if redis.call('EXISTS', t.base .. ':paused') == 1 then run, reserve = 0, 0 end  -- taskq queue pause
  t.run, t.reserve = run, reserve
  t.fair = is_fair(t.base)
  if t.rate_n > 0 then
    redis.call('ZREMRANGEBYSCORE', t.rate_key, '-inf', t.now - t.rate_window)
    t.limited = within(t, t.rate_n - redis.call('ZCARD', t.rate_key))
  end
  t.capped = t.cap > 0 and within(t, t.cap - redis.call('ZCARD', t.leases))
  local want = t.run + t.reserve
  t.want = want
  local base = t.base
  if want > 0 then reopen_due(base, t.now) end
  if want > 0 and redis.call('EXISTS', base .. ':gates') == 1 then
    -- tasks with held jobs; one this worker knows no limit of (removed since?) lets them all go
    for _, task in ipairs(redis.call('SMEMBERS', base .. ':gates')) do
      local g = t.gates[task]
      local back = {}  -- let go beyond what this call leases: back to the front of ready, in order
      for _, id in ipairs(unpark(g or new_gate(base, task, 0, 0, 0), t.now, g and want - t.n or 1000, t.leases)) do
        local jk = job_key(base, id)
        local f = redis.pcall('HMGET', jk, unpack(TAKE_FIELDS))
        if not f.err and f[1] and f[2] ~= 'cancelled' then  -- a cancelled one was taken off already
          if t.n < want then
            offer(t, id, jk, f, priority_of(redis.call('HGET', jk, 'priority')), false, out)
          else
            back[#back + 1] = {id, f[9]}
          end
        end
      end
      for i = #back, 1, -1 do
        local id, part = back[i][1], back[i][2]
        ready(base, id, false, priority_of(redis.call('HGET', job_key(base, id), 'priority')), true, part or false)
      end
    end
  end
  for prio = 9, 0, -1 do
    if t.n >= want or t.passed >= 1000 then break end
    t.stopped = prio
    if redis.call('EXISTS', base .. ':ring:' .. prio) == 1 then take_lanes(t, prio, out) end
    local ids = t.n < want and t.passed < 1000 and redis.call('LPOP', ready_key(base, prio), want - t.n)
    while ids do
      for _, id in ipairs(ids) do
        local jk = job_key(base, id)
        local f = fields_of(t, id, jk)
        if f then offer(t, id, jk, f, prio, false, out) end
      end
      -- jobs set aside left room: take more of this priority before going down to the next
      ids = t.n < want and t.passed > 0 and t.passed < 1000 and redis.call('LPOP', ready_key(base, prio), want - t.n)
    end
  end
  if t.unlaned > 0 then redis.call('DECRBY', base .. ':laned', t.unlaned) end  -- once, not per job
  make_room(base, t.n)
  if t.rate_n > 0 and t.n > 0 then redis.call('PEXPIRE', t.rate_key, t.rate_window) end
  return t.n
end

-- After take(): a cut by the cap marks the queue capped (the next lease to end wakes an idle
-- worker), or jobs left behind pass the wake-up token on. Returns the ms until the rate limits
-- (the queue's, a task's, a partition's) let the next job go (-1: not limited) and 1 if a cap
-- (the queue's or a task's) left jobs behind.
local function after_take(t)
  local wait, capped = -1, t.capped and 1 or 0
  if t.capped then redis.call('SET', t.base .. ':capped', '1', 'PX', t.lease_ms * 2) end
  if t.limited then  -- jobs may be left behind for the window: say when the oldest lease in it drops out
    local oldest = redis.call('ZRANGE', t.rate_key, 0, 0, 'WITHSCORES')
    wait = oldest[2] and math.max(1, tonumber(oldest[2]) + t.rate_window - t.now + 1) or 1
  elseif t.want > 0 and t.n >= t.want and not t.capped then
    -- jobs left behind: pass the wake-up token on to the next idle worker (higher priorities are empty)
    for prio = t.stopped, 0, -1 do
      if redis.call('LLEN', ready_key(t.base, prio)) > 0 or redis.call('EXISTS', t.base .. ':ring:' .. prio) == 1 then
        wake(t.base)
        break
      end
    end
  end
  for _, g in pairs(t.gates) do
    local reopens = g.parked and reopens_in(g, t.now)  -- held for a task's rate limit
    if reopens and (wait < 0 or reopens < wait) then wait = reopens end
    if g.parked and g.cap > 0 and g.room and g.room <= 0 then capped = 1 end
  end
  local parts = part_wait(t.base, t.now)  -- partitions waiting for their rate window or backoff
  if parts >= 0 and (wait < 0 or parts < wait) then wait = parts end
  return wait, capped
end
