-- restart: a job pinned to encoder identities that no live worker serves
-- restarts under another identity. Its done and leased encode chunks go
-- back to pending (a leased one loses its lease, so a late result is
-- stale); their attempts end as 'discarded', counted as waste, with the
-- reason; the pin is cleared and the job records why.
-- KEYS: none (see lib.lua)
-- ARGV: prefix, job_id, expected identities_json, reason, now_ms
-- Returns: the job state, or false when the job ended, its pin is no
--          longer the expected one, no chunk waits, or a stitch is no longer
--          blocked.
local job, expected, reason, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local j = redis.call('HMGET', jk(job), 'state', 'identities')
if not j[1] or is_terminal(j[1]) or j[1] == 'Committing' or j[2] ~= expected then
  return false
end
-- Only while chunks wait and every stitch still waits for them: the last
-- chunk may have been made since the coordinator looked.
local waiting = false
for _, tid in ipairs(tasks_of(job)) do
  local t = redis.call('HMGET', tk(tid), 'kind', 'state')
  if t[1] == 'Encode' and t[2] == 'Pending' then waiting = true end
  if t[1] == 'Stitch' and t[2] ~= 'Blocked' then return false end
end
if not waiting then return false end
local chunks, dollars = 0, 0
for _, tid in ipairs(tasks_of(job)) do
  local t = redis.call('HMGET', tk(tid), 'kind', 'state')
  if t[1] == 'Encode' and (t[2] == 'Done' or t[2] == 'Leased') then
    if t[2] == 'Leased' then
      close_attempt(tid, 'discarded', reason, now)
      local last = cjson.decode(redis.call('LINDEX', hk(tid), -1))
      dollars = dollars + (tonumber(last.cost_dollars) or 0)
    else
      local a = relabel_done(tid, 'discarded', reason)
      if a then dollars = dollars + (tonumber(a.cost_dollars) or 0) end
      redis.call('HSET', tk(tid), 'result', '')
    end
    redis.call('HSET', tk(tid), 'frames_done', 0)
    make_pending(tid, now)
    chunks = chunks + 1
  end
end
local restarts = {}
local kept = redis.call('HGET', jk(job), 'restarts')
if kept and kept ~= '' then restarts = cjson.decode(kept) end
table.insert(restarts, string.format(
  '%s; restarted under another identity, discarding %d finished or running chunks ($%.4f of waste)',
  reason, chunks, dollars))
redis.call('HSET', jk(job), 'restarts', cjson.encode(restarts), 'updated_unix_ms', now)
redis.call('HDEL', jk(job), 'identities')
redis.call('SREM', PINNED, job)
return job_state(job)
