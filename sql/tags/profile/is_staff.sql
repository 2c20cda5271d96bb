-- Staff customers are excluded from most marketing.
TAG (
  name is_staff,
  title '员工 Staff',
  description 'The customer is one of the lender''s employees (customer_type STAFF).',
  owner 'team:data_platform',
  category_l1 profile,
  category_l2 basic,
  value_type boolean,
);
SELECT customer_id, customer_type = 'STAFF' AS is_staff
FROM raw.customers
WHERE registered_at < $as_of_end
