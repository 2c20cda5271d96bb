-- The customer holds an approved credit line as of the day.
TAG (
  name credit_granted,
  title '已授信 Credit granted',
  description 'An application with decision APPROVED decided before the end of the day.',
  owner 'team:credit_risk',
  category_l1 credit,
  category_l2 approval,
  value_type boolean,
  default false,
);
SELECT customer_id, bool_or(decision = 'APPROVED') AS credit_granted
FROM raw.credit_applications
WHERE decided_at < $as_of_end
GROUP BY customer_id
