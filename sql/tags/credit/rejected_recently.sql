-- A credit application was rejected in the last 30 days.
TAG (
  name rejected_recently,
  title '近30天被拒 Rejected in 30 days',
  description 'An application rejected (decided) within the 30 days ending on the as-of day.',
  owner 'team:credit_risk',
  category_l1 credit,
  category_l2 application,
  value_type boolean,
  default false,
);
SELECT customer_id, bool_or(decision = 'REJECTED' AND decided_at >= CAST($as_of - INTERVAL 29 DAY AS DATE)) AS rejected_recently
FROM raw.credit_applications
WHERE decided_at < $as_of_end
GROUP BY customer_id
