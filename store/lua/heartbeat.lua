-- heartbeat: extend a lease and record progress.
-- KEYS: none (see lib.lua)
-- ARGV: prefix, task_id, attempt, frames_done, now_ms, lease_ttl_ms,
--       worker_id
-- Returns: 1 while the caller holds the lease, 0 when it is gone; an error
-- when the task is unknown or the worker never held this attempt.
local id, attempt, frames = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local now, ttl, worker = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local t = redis.call('HMGET', tk(id), 'state', 'attempt', 'job_id', 'worker_id')
if not t[1] then return redis.error_reply('NOTFOUND task ' .. id) end
-- Attempt n is the n-th entry of the history.
local a = attempt >= 1 and redis.call('LINDEX', hk(id), attempt - 1)
if not a or cjson.decode(a).worker_id ~= worker then
  return redis.error_reply(string.format(
    'DENIED worker "%s" does not hold task %s attempt %d', worker, id, attempt))
end
if t[1] ~= 'Leased' or tonumber(t[2]) ~= attempt or is_terminal(job_state(t[3])) then
  return 0
end
redis.call('ZADD', SEEN, now, t[4])
redis.call('HSET', tk(id), 'lease_until_ms', now + ttl, 'frames_done', frames)
redis.call('ZADD', LEASED, now + ttl, id)
return 1
