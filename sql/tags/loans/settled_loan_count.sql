-- Loans fully repaid.
TAG (
  name settled_loan_count,
  title '结清笔数 Settled loans',
  description 'Loans settled before the end of the day.',
  owner 'team:collections',
  category_l1 loans,
  category_l2 settlement,
  value_type integer,
  default 0,
  min 0,
);
SELECT customer_id, count(*) AS settled_loan_count
FROM raw.loans
WHERE settled_at < $as_of_end
GROUP BY customer_id
