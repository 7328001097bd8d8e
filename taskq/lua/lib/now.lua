-- now_ms(): Redis's clock (TIME) in unix ms, the one clock of every script (never the client's).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
