-- Installments paid after their due date.
TAG (
  name late_payment_count,
  title '逾期还款次数 Late payments',
  description 'Installments paid by the end of the day, on a day after their due date.',
  owner 'team:collections',
  category_l1 repayment,
  category_l2 history,
  value_type integer,
  default 0,
  min 0,
);
SELECT l.customer_id, count(*) AS late_payment_count
FROM raw.installments AS i
JOIN raw.loans AS l ON l.loan_id = i.loan_id
WHERE i.paid_at < $as_of_end AND CAST(i.paid_at AS DATE) > i.due_date
GROUP BY l.customer_id
