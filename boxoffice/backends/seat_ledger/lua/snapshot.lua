-- The whole state for clients. ARGV: now ms, '1' with every seat / '0' tier counts only.
-- Replies {"v":..,"a":{tier: public units},"s":[seat, state, seat, state, ...]}.
if not loaded() then return cjson.encode({err = 'NOT_LOADED'}) end
expire_due(tonumber(ARGV[1]))
local v = publish(false)
local available = {}
for _, t in ipairs(redis.call('HKEYS', P .. 'tiers')) do available[t] = public(t) end
local flat = {}
if ARGV[2] ~= '0' then flat = redis.call('HGETALL', P .. 'seats') end
for i = 2, #flat, 2 do flat[i] = string.sub(flat[i], 1, 1) end
if #flat == 0 then return '{"v":' .. v .. ',"a":' .. encode_map(available) .. ',"s":[]}' end
return '{"v":' .. v .. ',"a":' .. encode_map(available) .. ',"s":' .. cjson.encode(flat) .. '}'
