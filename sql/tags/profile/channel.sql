-- The channel the customer registered through.
TAG (
  name channel,
  title '注册渠道 Registration channel',
  description 'APP, MINI_PROGRAM, H5 or OFFLINE: where the customer registered.',
  owner 'team:growth',
  category_l1 profile,
  category_l2 acquisition,
  value_type string,
  values (APP, MINI_PROGRAM, H5, OFFLINE),
);
SELECT customer_id, channel AS channel
FROM raw.customers
WHERE registered_at < $as_of_end
