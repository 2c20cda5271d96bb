-- The day of the first disbursement.
TAG (
  name first_drawn_date,
  title '首次支用日期 First drawdown date',
  description 'The business date of the first loan disbursed; NULL when never drawn.',
  owner 'team:growth',
  category_l1 loans,
  category_l2 drawdown,
  value_type date,
);
SELECT customer_id, CAST(min(disbursed_at) AS DATE) AS first_drawn_date
FROM raw.loans
WHERE disbursed_at < $as_of_end
GROUP BY customer_id
