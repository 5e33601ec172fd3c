-- Read a hold. ARGV: hold id, now ms.
if not loaded() then return cjson.encode({err = 'NOT_LOADED'}) end
expire_due(tonumber(ARGV[2]))
local v = publish(false)
if redis.call('EXISTS', P .. 'hold:' .. ARGV[1]) == 0 then return cjson.encode({err = gone_error(ARGV[1])}) end
return hold_reply(ARGV[1], v)
