-- Principal of the loans still active.
TAG (
  name outstanding_principal,
  title '在贷本金 Active principal',
  description 'Sum of the principal of loans disbursed and not settled by the end of the day.',
  owner 'team:credit_risk',
  category_l1 loans,
  category_l2 balance,
  value_type decimal,
  default 0,
  min 0,
);
SELECT customer_id, sum(principal) AS outstanding_principal
FROM raw.loans
WHERE disbursed_at < $as_of_end AND (settled_at IS NULL OR settled_at >= $as_of_end)
GROUP BY customer_id
