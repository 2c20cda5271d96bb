-- Installments repaid.
TAG (
  name paid_installment_count,
  title '已还期数 Installments paid',
  description 'Installments paid by the end of the day.',
  owner 'team:collections',
  category_l1 repayment,
  category_l2 history,
  value_type integer,
  default 0,
  min 0,
);
SELECT l.customer_id, count(*) AS paid_installment_count
FROM raw.installments AS i
JOIN raw.loans AS l ON l.loan_id = i.loan_id
WHERE i.paid_at < $as_of_end
GROUP BY l.customer_id
