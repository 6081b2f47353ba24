-- hand_back: a worker gives a leased task back after an interruption
-- notice. The attempt is counted against the pool that held it, its log is
-- kept, and the task is requeued at once (escalating when one pool keeps
-- interrupting it); no failure is counted. The worker stops counting as
-- live capacity.
-- KEYS: none (see lib.lua)
-- ARGV: prefix, task_id, attempt, reason, now_ms, log
-- Returns: {job_id, job_state}.
local id, attempt, reason, now, log = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local job, e = fenced(id, attempt)
if not job then return e end
close_attempt(id, 'interrupted', reason, now)
local last = cjson.decode(redis.call('LINDEX', hk(id), -1))
redis.call('HINCRBY', tk(id) .. ':intr', last.pool or '', 1)
-- The worker is going away: its pool's capacity no longer counts as live.
redis.call('ZREM', SEEN, last.worker_id)
redis.call('ZREM', LEASED, id)
keep_log(id, attempt, log)
requeue(job, id, now)
return {job, job_state(job)}
