-- Customers overdue today by 1 to 90 days, for the collections reminder.
SEGMENT (
  name overdue_now,
  kind rule,
  owner 'team:risk',
  description 'Currently overdue by 1-90 days (early collections)',
  shared_with (team:ops),
  rule 'overdue AND overdue_days BETWEEN 1 AND 90 AND customer_type IN (''NORMAL'', ''H5_REFERRAL'')',
  max_change_ratio 0.8,
);
