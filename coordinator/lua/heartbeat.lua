-- heartbeat: extend a lease and record progress.
-- KEYS: none (see lib.lua)
-- ARGV: prefix, task_id, attempt, frames_done, now_ms, lease_ttl_ms
-- Returns: 1 while the caller holds the lease, 0 when it is gone.
local id, attempt, frames = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local now, ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
local t = redis.call('HMGET', tk(id), 'state', 'attempt', 'job_id', 'worker_id')
if t[1] ~= 'Leased' or tonumber(t[2]) ~= attempt or is_terminal(job_state(t[3])) then
  return 0
end
redis.call('ZADD', SEEN, now, t[4])
redis.call('HSET', tk(id), 'lease_until_ms', now + ttl, 'frames_done', frames)
redis.call('ZADD', LEASED, now + ttl, id)
return 1
