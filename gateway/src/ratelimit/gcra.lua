-- GCRA (generic cell rate algorithm) over several limits at once: the call
-- passes only if every limit allows it, and then counts against all of them.
-- One round trip per decision; Redis's own clock, so every gateway agrees.
--
-- KEYS[i]: the theoretical arrival time (TAT, microseconds) of limit i.
-- ARGV[2i-1]: emission interval of limit i (microseconds between calls).
-- ARGV[2i]:   burst of limit i (calls allowed at once).
-- Returns, per limit: allowed (0/1), remaining, reset_after_us, retry_after_us.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local results = {}
local new_tats = {}
local allowed_all = true
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then
    tat = now
  end
  local new_tat = tat + interval
  local allow_at = new_tat - burst * interval
  if now < allow_at then
    allowed_all = false
    table.insert(results, 0)
    table.insert(results, 0)
    table.insert(results, tat - now)
    table.insert(results, allow_at - now)
  else
    new_tats[i] = new_tat
    table.insert(results, 1)
    table.insert(results, math.floor((now - allow_at) / interval))
    table.insert(results, new_tat - now)
    table.insert(results, 0)
  end
end
if allowed_all then
  for i = 1, #KEYS do
    -- %.0f: Lua's default number format would round microsecond times.
    redis.call('SET', KEYS[i], string.format('%.0f', new_tats[i]), 'PX', math.ceil((new_tats[i] - now) / 1000) + 1)
  end
end
return results
