-- escalate: move spot tasks that waited longer than their job allows to
-- the on-demand partition.
-- KEYS: none (see lib.lua)
-- ARGV: prefix, now_ms
-- Returns: the ids of the tasks moved.
local now = tonumber(ARGV[2])
local moved = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', SPOT_DEADLINE, '-inf', '(' .. now)) do
  redis.call('ZREM', SPOT_DEADLINE, id)
  local t = redis.call('HMGET', tk(id), 'state', 'partition', 'order', 'class')
  if t[1] == 'Pending' and t[2] == 'Spot' then
    redis.call('ZREM', pending_key('Spot'), id)
    redis.call('ZREM', pq_key('Spot', t[4]), id)
    redis.call('HSET', tk(id), 'partition', 'OnDemand')
    redis.call('ZADD', pending_key('OnDemand'), tonumber(t[3]), id)
    redis.call('ZADD', pq_key('OnDemand', t[4]), tonumber(t[3]), id)
    table.insert(moved, id)
  end
end
return moved
