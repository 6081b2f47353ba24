-- reject: the outlier guard's re-encode, run by the coordinator that holds
-- a stitch's lease when some of the job's chunks fell short. While the
-- lease holds and no stitch of the job is done, each
-- outlier's done chunk goes back to pending: its done attempt ends as
-- 'rejected' (waste) with the reason, its result is dropped, and it avoids
-- the worker that made it. Every stitch of the job waits for the chunks
-- again: leased ones (this one, and any another replica leased meanwhile)
-- are released, so their results are refused as stale.
-- KEYS: none (see lib.lua)
-- ARGV: prefix, stitch_id, attempt, now_ms, then n × (task_id, worker_id,
--       reason, psnr_json: the chunk's mean PSNR per output)
-- Returns: {job_id, job_state}, or false when a stitch is done or a chunk
--          no longer is.
local stitch, attempt, now = ARGV[2], ARGV[3], ARGV[4]
local job, e = fenced(stitch, attempt)
if not job then return e end
local state = job_state(job)
if is_terminal(state) or state == 'Committing' then return false end
for _, tid in ipairs(tasks_of(job)) do
  if tid ~= stitch then
    local t = redis.call('HMGET', tk(tid), 'kind', 'state')
    if t[1] == 'Stitch' and t[2] == 'Done' then return false end
  end
end
for i = 5, #ARGV, 4 do
  local t = redis.call('HMGET', tk(ARGV[i]), 'state', 'job_id')
  if t[1] ~= 'Done' or t[2] ~= job then return false end
end
for i = 5, #ARGV, 4 do
  local tid, worker, reason = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local psnr = cjson.decode(ARGV[i + 3])
  relabel_done(tid, 'rejected', reason, function(a)
    -- (cjson writes an empty table as an object, which no list reads.)
    if #psnr > 0 then a.rejected_psnr = psnr end
  end)
  redis.call('HSET', tk(tid), 'result', '', 'frames_done', 0, 'avoid', worker)
  make_pending(tid, now)
end
for _, tid in ipairs(tasks_of(job)) do
  local t = redis.call('HMGET', tk(tid), 'kind', 'state')
  if t[1] == 'Stitch' then
    if t[2] == 'Leased' then
      close_attempt(tid, 'released', 'the outlier guard sent chunks back to be encoded again', now)
      redis.call('ZREM', LEASED, tid)
    end
    dequeue(tid)
    redis.call('HSET', tk(tid), 'state', 'Blocked')
  end
end
redis.call('HSET', jk(job), 'updated_unix_ms', now)
return {job, job_state(job)}
