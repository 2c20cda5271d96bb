-- The customer has been overdue at some point.
TAG (
  name ever_overdue,
  title '曾逾期 Ever overdue',
  description 'An installment due before the as-of day that was paid after its due date or not paid by the end of the day.',
  owner 'team:collections',
  category_l1 repayment,
  category_l2 history,
  value_type boolean,
  default false,
);
SELECT l.customer_id, bool_or(i.paid_at IS NULL OR CAST(i.paid_at AS DATE) > i.due_date) AS ever_overdue
FROM raw.installments AS i
JOIN raw.loans AS l ON l.loan_id = i.loan_id
WHERE i.due_date < $as_of
GROUP BY l.customer_id
