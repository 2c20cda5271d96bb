-- The longest delay on any installment so far.
TAG (
  name max_overdue_days_ever,
  title '历史最大逾期天数 Max days overdue ever',
  description 'Over installments due before the as-of day: the largest delay in days between the due date and the payment (or the as-of day when still unpaid); NULL when never late.',
  owner 'team:collections',
  category_l1 repayment,
  category_l2 history,
  value_type integer,
  min 1,
);
SELECT l.customer_id, max(date_diff('day', i.due_date, least(coalesce(CAST(i.paid_at AS DATE), $as_of), $as_of))) AS max_overdue_days_ever
FROM raw.installments AS i
JOIN raw.loans AS l ON l.loan_id = i.loan_id
WHERE i.due_date < $as_of AND (i.paid_at IS NULL OR CAST(i.paid_at AS DATE) > i.due_date)
GROUP BY l.customer_id
