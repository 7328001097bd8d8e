#!lua
-- logs: the log lines running jobs of one queue wrote since the last batch (their worker's lease
-- keeper and settler send them: one call for every job's lines, never one per line).
-- KEYS[1]  <ns>:{q}   the queue's base
-- ARGV: per job: id, n, then its n lines ('<unix ms> <LEVEL> <text>', oldest first)
-- Returns how many lines were stored (a job with no record stores none).
-- @include lib/logs
local base = KEYS[1]
local stored, i = 0, 1
while i <= #ARGV do
  local n = tonumber(ARGV[i + 1])
  stored = stored + append_logs(base, ARGV[i], ARGV, i + 2, n)
  i = i + 2 + n
end
return stored
