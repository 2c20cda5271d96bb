-- Good customers: they borrowed and always paid on time.
TAG (
  name drawn_never_overdue,
  title '支用且从未逾期 Drawn, never overdue',
  description 'Has drawn at least once and was never overdue.',
  owner 'team:growth',
  category_l1 marketing,
  category_l2 retention,
  value_type boolean,
);
drawn AND NOT ever_overdue
