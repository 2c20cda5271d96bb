-- The customer's type at registration.
TAG (
  name customer_type,
  title '客户类型 Customer type',
  description 'NORMAL, STAFF, H5_REFERRAL or OFFLINE.',
  owner 'team:data_platform',
  category_l1 profile,
  category_l2 basic,
  value_type string,
  values (NORMAL, STAFF, H5_REFERRAL, OFFLINE),
);
SELECT customer_id, customer_type AS customer_type
FROM raw.customers
WHERE registered_at < $as_of_end
