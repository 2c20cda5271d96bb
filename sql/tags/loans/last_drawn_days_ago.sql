-- Days since the latest disbursement.
TAG (
  name last_drawn_days_ago,
  title '距上次支用天数 Days since last drawdown',
  description 'Whole days from the latest disbursement to the as-of day; NULL when never drawn.',
  owner 'team:growth',
  category_l1 loans,
  category_l2 drawdown,
  value_type integer,
  min 0,
);
SELECT customer_id, date_diff('day', CAST(max(disbursed_at) AS DATE), $as_of) AS last_drawn_days_ago
FROM raw.loans
WHERE disbursed_at < $as_of_end
GROUP BY customer_id
