-- How long the oldest unpaid installment has been overdue.
TAG (
  name overdue_days,
  title '逾期天数 Days overdue',
  description 'The largest number of days between the due date and the as-of day over the overdue installments; NULL when not overdue.',
  owner 'team:collections',
  category_l1 repayment,
  category_l2 status,
  value_type integer,
  min 1,
);
SELECT l.customer_id, max(date_diff('day', i.due_date, $as_of)) AS overdue_days
FROM raw.installments AS i
JOIN raw.loans AS l ON l.loan_id = i.loan_id
WHERE i.due_date < $as_of AND (i.paid_at IS NULL OR i.paid_at >= $as_of_end)
GROUP BY l.customer_id
