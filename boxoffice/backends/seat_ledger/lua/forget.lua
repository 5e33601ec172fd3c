-- Drop the session's state (its version high-water mark goes too; a later load starts past
-- now * 1000, above anything it had).
for _, id in ipairs(redis.call('SMEMBERS', P .. 'holdids')) do redis.call('DEL', P .. 'hold:' .. id) end
for _, name in ipairs({'meta', 'tiers', 'cap', 'free', 'held', 'sold', 'blocked', 'quota', 'qsum',
                       'seats', 'seattier', 'rows', 'holds', 'holdids', 'users'}) do
  redis.call('DEL', P .. name)
end
return '{"ok":true}'
