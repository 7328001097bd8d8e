-- The queue's event stream (docs/protocol.md §8): one entry per job transition, appended by the
-- script that makes the transition, so an event is never missing or doubled. The stream
-- <base>:events keeps about <base>:events:max entries (absent: 10000; 0: this queue writes
-- none), trimmed as it grows (XADD MAXLEN ~). Its keys share the base's hash tag.
local events_max = false  -- read once per script call

-- append one event: kind, job id, task name, attempt, then `more` (a list of name, value; or nil)
local function emit(base, kind, id, task, attempt, more)
  if events_max == false then
    events_max = tonumber(redis.call('GET', base .. ':events:max') or '10000') or 10000
  end
  if events_max <= 0 then return end
  if more then
    redis.call('XADD', base .. ':events', 'MAXLEN', '~', events_max, '*', 'kind', kind, 'job', id,
      'task', task or '', 'attempt', attempt or '1', unpack(more))
  else
    redis.call('XADD', base .. ':events', 'MAXLEN', '~', events_max, '*', 'kind', kind, 'job', id,
      'task', task or '', 'attempt', attempt or '1')
  end
end

-- ms a run took, as an event field pair (nothing if it never started)
local function ran_for(more, started_ms, now)
  local started = tonumber(started_ms or '')
  if started then
    more[#more + 1] = 'duration_ms'
    more[#more + 1] = now - started
  end
  return more
end
