-- The customer has drawn on the credit line.
TAG (
  name drawn,
  title '已支用 Drawn',
  description 'A loan disbursed before the end of the day.',
  owner 'team:credit_risk',
  category_l1 loans,
  category_l2 drawdown,
  value_type boolean,
  default false,
);
SELECT customer_id, bool_or(disbursed_at < $as_of_end) AS drawn
FROM raw.loans
WHERE disbursed_at < $as_of_end
GROUP BY customer_id
