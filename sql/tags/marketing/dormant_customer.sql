-- Borrowed before, nothing active and quiet for half a year.
TAG (
  name dormant_customer,
  title '沉睡客户 Dormant customer',
  description 'Has drawn, has no active loan and the last drawdown is more than 180 days old.',
  owner 'team:growth',
  category_l1 marketing,
  category_l2 retention,
  value_type boolean,
  default false,
);
drawn AND active_loan_count = 0 AND last_drawn_days_ago > 180
