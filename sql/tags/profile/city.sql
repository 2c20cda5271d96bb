-- The customer's city.
TAG (
  name city,
  title '城市 City',
  description 'The city recorded at registration.',
  owner 'team:data_platform',
  category_l1 profile,
  category_l2 region,
  value_type string,
);
SELECT customer_id, city AS city
FROM raw.customers
WHERE registered_at < $as_of_end
