-- Granted but never drawn: the wake-up (唤醒) audience for interest-free coupons.
SEGMENT (
  name wake_up,
  kind rule,
  owner 'team:growth',
  description 'Approved customers who never drew a loan, are not overdue and registered 30+ days ago',
  shared_with (team:marketing, team:ops),
  rule 'granted_not_drawn AND NOT overdue AND registered_days >= 30',
  min_size 1,
  max_change_ratio 0.5,
  sync on,
  sync_schedule '06:00',
  max_removed_ratio 0.5,
);
