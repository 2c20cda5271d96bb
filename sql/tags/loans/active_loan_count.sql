-- Loans disbursed and not settled as of the day.
TAG (
  name active_loan_count,
  title '在贷笔数 Active loans',
  description 'Loans disbursed before the end of the day and not settled by then.',
  owner 'team:credit_risk',
  category_l1 loans,
  category_l2 balance,
  value_type integer,
  default 0,
  min 0,
);
SELECT customer_id, count(*) AS active_loan_count
FROM raw.loans
WHERE disbursed_at < $as_of_end AND (settled_at IS NULL OR settled_at >= $as_of_end)
GROUP BY customer_id
