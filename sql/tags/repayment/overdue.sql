-- The customer has an unpaid installment past its due date.
TAG (
  name overdue,
  title '逾期 Overdue',
  description 'An installment due before the as-of day and not paid by the end of it.',
  owner 'team:collections',
  category_l1 repayment,
  category_l2 status,
  value_type boolean,
  default false,
);
SELECT l.customer_id, count(*) > 0 AS overdue
FROM raw.installments AS i
JOIN raw.loans AS l ON l.loan_id = i.loan_id
WHERE i.due_date < $as_of AND (i.paid_at IS NULL OR i.paid_at >= $as_of_end)
GROUP BY l.customer_id
