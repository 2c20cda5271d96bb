-- How many times the customer applied for credit.
TAG (
  name application_count,
  title '申请次数 Credit applications',
  description 'Credit applications submitted by the end of the day, whatever their decision.',
  owner 'team:credit_risk',
  category_l1 credit,
  category_l2 application,
  value_type integer,
  default 0,
  min 0,
);
SELECT customer_id, count(*) AS application_count
FROM raw.credit_applications
WHERE applied_at < $as_of_end
GROUP BY customer_id
