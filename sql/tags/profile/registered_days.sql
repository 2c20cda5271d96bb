-- Days since registration, counted on the as-of day.
TAG (
  name registered_days,
  title '注册天数 Days since registration',
  description 'Whole days from the registration date to the as-of day (0 on the day of registration).',
  owner 'team:growth',
  category_l1 profile,
  category_l2 lifecycle,
  value_type integer,
  min 0,
);
SELECT customer_id, date_diff('day', CAST(registered_at AS DATE), $as_of) AS registered_days
FROM raw.customers
WHERE registered_at < $as_of_end
