-- purge: retention. Drops jobs that ended before the cutoff, with their
-- tasks, attempt histories, logs and idempotency key, and forgets workers
-- registered before the cutoff that have not asked for work since.
-- KEYS: none (see lib.lua)
-- ARGV: prefix, cutoff_ms, limit (at most this many jobs and workers)
-- Returns: {jobs purged, workers purged}.
local cutoff, limit = ARGV[2], tonumber(ARGV[3])
local jobs = redis.call('ZRANGEBYSCORE', FINISHED, '-inf', '(' .. cutoff, 'LIMIT', 0, limit)
for _, job in ipairs(jobs) do
  for _, t in ipairs(tasks_of(job)) do
    local n = tonumber(redis.call('HGET', tk(t), 'attempt')) or 0
    for a = 1, n do redis.call('DEL', tk(t) .. ':log:' .. a) end
    redis.call('DEL', tk(t), hk(t), tk(t) .. ':intr')
  end
  local key = redis.call('HGET', jk(job), 'idempotency_key')
  if key and key ~= '' and redis.call('GET', P .. ':idem:' .. key) == job then
    redis.call('DEL', P .. ':idem:' .. key)
  end
  redis.call('DEL', jk(job), jk(job) .. ':tasks')
  redis.call('ZREM', P .. ':jobs', job)
  redis.call('ZREM', FINISHED, job)
end
-- Workers registered before the cutoff that have not asked for work since
-- (or have handed their work back and left).
local purged = 0
for _, w in ipairs(redis.call('ZRANGEBYSCORE', WORKERS, '-inf', '(' .. cutoff)) do
  if purged >= limit then break end
  local seen = redis.call('ZSCORE', SEEN, w)
  if not seen or tonumber(seen) < tonumber(cutoff) then
    redis.call('DEL', P .. ':worker:' .. w, P .. ':worker:' .. w .. ':strikes')
    redis.call('ZREM', SEEN, w)
    redis.call('ZREM', WORKERS, w)
    purged = purged + 1
  end
end
return {#jobs, purged}
