-- Give a hold back. ARGV: hold id, now ms. Replies {"ok":true,"released":bool}.
if not loaded() then return cjson.encode({err = 'NOT_LOADED'}) end
expire_due(tonumber(ARGV[2]))
local released = give_back(ARGV[1], 'RELEASED')
publish(false)
return cjson.encode({ok = true, released = released})
