-- strike: counts a chunk the outlier guard rejected against the worker
-- that made it, once per key (the chunk and the worker), in the worker's
-- strikes hash (purged with the worker).
-- KEYS: none (see lib.lua)
-- ARGV: prefix, worker key, strike key, reason
-- Returns: every reason counted, or false for an unknown worker.
local worker, key, reason = ARGV[2], ARGV[3], ARGV[4]
if redis.call('EXISTS', worker) == 0 then return false end
redis.call('HSETNX', worker .. ':strikes', key, reason)
return redis.call('HVALS', worker .. ':strikes')
