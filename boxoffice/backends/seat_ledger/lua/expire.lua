-- Release due holds. ARGV: now ms. Replies the released ids and the next expiry (0: none).
if not loaded() then return cjson.encode({err = 'NOT_LOADED'}) end
local released = expire_due(tonumber(ARGV[1]))
publish(false)
local nxt = redis.call('ZRANGE', P .. 'holds', 0, 0, 'WITHSCORES')
local reply = {ok = true, next = 0}
if #released > 0 then reply.released = released end
if nxt[2] then reply.next = tonumber(nxt[2]) end
-- the caller sets the sweeper's index to exactly this; mirror it (see needs_tracking)
if reply.next > 0 then
  redis.call('HSET', P .. 'meta', 'tracked', reply.next)
else
  redis.call('HDEL', P .. 'meta', 'tracked')
end
return cjson.encode(reply)
