-- expire: requeue every task whose lease deadline has passed; a task that
-- expired more than max_expiries times fails its job.
-- KEYS: none (see lib.lua)
-- ARGV: prefix, now_ms, max_expiries
-- Returns: a flat list {job_id, job_state, ...}, one pair per expired task.
local now, max_expiries = tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', LEASED, '-inf', '(' .. now)) do
  redis.call('ZREM', LEASED, id)
  local t = redis.call('HMGET', tk(id), 'state', 'job_id')
  if t[1] == 'Leased' then
    close_attempt(id, 'expired', 'lease expired', now)
    local n = redis.call('HINCRBY', tk(id), 'expiries', 1)
    if n > max_expiries then
      redis.call('HSET', tk(id), 'state', 'Pending')
      fail_job(t[2], string.format('%s lost its lease %d times', id, n), now)
    else
      requeue(t[2], id, now)
    end
    table.insert(out, t[2])
    table.insert(out, job_state(t[2]))
  end
end
return out
