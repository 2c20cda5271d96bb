-- How many loans were disbursed.
TAG (
  name loan_count,
  title '放款笔数 Loans disbursed',
  description 'Loans disbursed before the end of the day.',
  owner 'team:credit_risk',
  category_l1 loans,
  category_l2 drawdown,
  value_type integer,
  default 0,
  min 0,
);
SELECT customer_id, count(*) AS loan_count
FROM raw.loans
WHERE disbursed_at < $as_of_end
GROUP BY customer_id
