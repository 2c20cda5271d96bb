-- Came back for a second loan.
TAG (
  name repeat_borrower,
  title '复借客户 Repeat borrower',
  description 'Two or more loans disbursed.',
  owner 'team:growth',
  category_l1 marketing,
  category_l2 retention,
  value_type boolean,
);
loan_count >= 2
