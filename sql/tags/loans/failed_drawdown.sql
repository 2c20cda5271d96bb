-- A drawdown attempt failed.
TAG (
  name failed_drawdown,
  title '支用失败 Failed drawdown',
  description 'A loan applied for by the end of the day whose disbursement failed (status FAILED).',
  owner 'team:growth',
  category_l1 loans,
  category_l2 drawdown,
  value_type boolean,
  default false,
);
SELECT customer_id, bool_or(status = 'FAILED') AS failed_drawdown
FROM raw.loans
WHERE applied_at < $as_of_end
GROUP BY customer_id
