-- finish_commit: end a job in Committing once its output is at the final
-- path (or the commit failed).
-- KEYS: none (see lib.lua)
-- ARGV: prefix, job_id, ok (1/0), error, now_ms
-- Returns: the job state.
local job, ok, err, now = ARGV[2], ARGV[3] == '1', ARGV[4], ARGV[5]
local st = job_state(job)
if not st then return redis.error_reply('NOTFOUND job ' .. job) end
if st ~= 'Committing' then
  return redis.error_reply('STALE job ' .. job .. ' is ' .. st .. ', not committing')
end
if ok then
  redis.call('HSET', jk(job), 'state', 'Succeeded', 'finished_unix_ms', now, 'updated_unix_ms', now)
  redis.call('SREM', P .. ':committing', job)
  redis.call('ZADD', FINISHED, now, job)
  release_paths(job)
else
  fail_job(job, 'commit failed: ' .. err, now)
end
return job_state(job)
