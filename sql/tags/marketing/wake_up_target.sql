-- Who receives the wake-up coupon.
TAG (
  name wake_up_target,
  title '唤醒券目标 Wake-up target',
  description 'Granted but not drawn, not staff, not overdue ever, registered between 7 and 365 days ago.',
  owner 'team:growth',
  category_l1 marketing,
  category_l2 activation,
  value_type boolean,
  default false,
);
granted_not_drawn AND NOT is_staff AND NOT ever_overdue AND registered_days BETWEEN 7 AND 365
