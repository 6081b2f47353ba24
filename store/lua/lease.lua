-- lease: lease the oldest pending task to a worker (first in, first out;
-- cost-aware placement uses window.lua and claim.lua instead), bumping its
-- fencing token and opening an attempt record.
-- KEYS: none (see lib.lua)
-- On-demand workers serve the OnDemand partition first, then Spot rather
-- than idle; spot workers serve only Spot.
-- ARGV: prefix, worker_id, now_ms, lease_ttl_ms, price_per_hour, slots,
--       nvenc (1/0), on_demand (1/0)
-- Returns: nil, or {task_id, job_id, attempt, work_json, deps_json}.
local worker, now, ttl = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local price, slots = tonumber(ARGV[5]), math.max(1, tonumber(ARGV[6]))
local nvenc, on_demand = ARGV[7] == '1', ARGV[8] == '1'
local capacity = redis.call('HGET', P .. ':worker:' .. worker, 'capacity')
if not capacity then
  return redis.error_reply('NOTFOUND worker ' .. worker)
end
redis.call('ZADD', SEEN, now, worker)
local partitions = {'Spot'}
if capacity == 'OnDemand' then partitions = {'OnDemand', 'Spot'} end
local function pop()
  for _, p in ipairs(partitions) do
    local popped = redis.call('ZPOPMIN', pending_key(p))
    if #popped > 0 then
      redis.call('ZREM', pq_key(p, redis.call('HGET', tk(popped[1]), 'class')), popped[1])
      return popped[1]
    end
  end
  return nil
end
while true do
  local id = pop()
  if not id then return false end
  redis.call('ZREM', SPOT_DEADLINE, id)
  local t = redis.call('HMGET', tk(id), 'state', 'job_id', 'sessions')
  local jstate = job_state(t[2])
  if t[1] == 'Pending' and not is_terminal(jstate) and jstate ~= 'Committing' then
    local sessions = 0
    if nvenc then sessions = tonumber(t[3]) or 0 end
    local share = math.min(1, math.max(1, sessions) / slots)
    return lease_task(id, worker, now, ttl, price * share, on_demand, sessions)
  end
end
