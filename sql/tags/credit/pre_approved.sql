-- The customer was offered a pre-approved line.
TAG (
  name pre_approved,
  title '预授信 Pre-approved',
  description 'At least one credit application made by the end of the day came from a pre-approval (credit_method PRE_APPROVED).',
  owner 'team:growth',
  category_l1 credit,
  category_l2 approval,
  value_type boolean,
  default false,
);
SELECT customer_id, bool_or(credit_method = 'PRE_APPROVED') AS pre_approved
FROM raw.credit_applications
WHERE applied_at < $as_of_end
GROUP BY customer_id
