-- hand_back: a worker gives a leased task back (spot notice, shutdown);
-- it is requeued at once and no failure is counted.
-- KEYS: none (see lib.lua)
-- ARGV: prefix, task_id, attempt, reason, now_ms
-- Returns: {job_id, job_state}.
local id, attempt, reason, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local job, e = fenced(id, attempt)
if not job then return e end
close_attempt(id, 'handed-back', reason, now)
make_pending(id, now)
return {job, job_state(job)}
