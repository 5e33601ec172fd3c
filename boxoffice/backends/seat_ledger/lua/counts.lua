-- Per-tier unit counts. Replies {tier: [free, held, sold, blocked, set aside]}.
local out = {}
for _, t in ipairs(redis.call('HKEYS', P .. 'tiers')) do
  local free = num('free', t)
  out[t] = {free, num('held', t), num('sold', t), num('blocked', t), math.min(free, num('qsum', t))}
end
return encode_map(out)
