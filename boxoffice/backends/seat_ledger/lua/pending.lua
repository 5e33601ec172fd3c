-- An order takes the hold: it now lapses at the order's expiry + grace.
-- ARGV: hold id, user, now ms, until ms.
if not loaded() then return cjson.encode({err = 'NOT_LOADED'}) end
expire_due(tonumber(ARGV[3]))
local h = P .. 'hold:' .. ARGV[1]
local owner = redis.call('HGET', h, 'u')
if not owner then return fail(gone_error(ARGV[1])) end
if owner ~= ARGV[2] then return fail('HOLD_NOT_FOUND') end
redis.call('HSET', h, 'st', 'PENDING', 'e', ARGV[4])
redis.call('ZADD', P .. 'holds', ARGV[4], ARGV[1])
return hold_reply(ARGV[1], publish(false), tonumber(ARGV[3]))
