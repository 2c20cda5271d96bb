-- A credit application is waiting for a decision.
TAG (
  name pending_application,
  title '审批中 Application pending',
  description 'An application submitted by the end of the day that had no decision by then.',
  owner 'team:credit_risk',
  category_l1 credit,
  category_l2 application,
  value_type boolean,
  default false,
);
SELECT customer_id, bool_or(decided_at IS NULL OR decided_at >= $as_of_end) AS pending_application
FROM raw.credit_applications
WHERE applied_at < $as_of_end
GROUP BY customer_id
