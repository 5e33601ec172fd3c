-- Set aside units of a tier for a channel. ARGV: tier, channel, units (0 removes).
if not loaded() then return cjson.encode({err = 'NOT_LOADED'}) end
local t, channel, units = ARGV[1], ARGV[2], tonumber(ARGV[3])
if not redis.call('HGET', P .. 'tiers', t) then return fail('UNKNOWN_TIER') end
local field = t .. '\t' .. channel
local others = num('qsum', t) - num('quota', field)
local free = num('free', t)
if units < 0 or others + units > free then return fail('SOLD_OUT', {available = free - others}) end
if units > 0 then redis.call('HSET', P .. 'quota', field, units) else redis.call('HDEL', P .. 'quota', field) end
redis.call('HSET', P .. 'qsum', t, others + units)
touch_tier(t)
return '{"ok":true,"v":' .. publish(false) .. '}'
