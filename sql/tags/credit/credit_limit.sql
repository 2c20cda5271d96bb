-- The most recently approved credit limit.
TAG (
  name credit_limit,
  title '授信额度 Credit limit',
  description 'The limit of the latest application approved by the end of the day; NULL without an approved line.',
  owner 'team:credit_risk',
  category_l1 credit,
  category_l2 limit,
  value_type decimal,
  min 0,
);
SELECT customer_id, arg_max(credit_limit, decided_at) AS credit_limit
FROM raw.credit_applications
WHERE decision = 'APPROVED' AND decided_at < $as_of_end
GROUP BY customer_id
