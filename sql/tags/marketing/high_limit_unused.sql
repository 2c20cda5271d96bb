-- A large approved line with nothing borrowed on it now.
TAG (
  name high_limit_unused,
  title '高额度未用 High limit, unused',
  description 'An approved limit of at least 20,000 and no active loan.',
  owner 'team:growth',
  category_l1 marketing,
  category_l2 activation,
  value_type boolean,
  default false,
);
credit_limit >= 20000 AND active_loan_count = 0
