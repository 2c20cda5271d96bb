-- More than 30 days overdue.
TAG (
  name m1_plus,
  title 'M1+ 逾期 M1+',
  description 'Currently overdue by more than 30 days.',
  owner 'team:collections',
  category_l1 risk,
  category_l2 delinquency,
  value_type boolean,
  default false,
);
overdue_days > 30
