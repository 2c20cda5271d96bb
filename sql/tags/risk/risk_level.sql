-- A simple delinquency grade.
TAG (
  name risk_level,
  title '风险等级 Risk level',
  description 'M3+ over 90 days overdue, M1+ over 30, OVERDUE when overdue, RECOVERED when overdue in the past, CLEAN otherwise.',
  owner 'team:collections',
  category_l1 risk,
  category_l2 delinquency,
  value_type string,
  values ('M3+', 'M1+', OVERDUE, RECOVERED, CLEAN),
);
CASE
  WHEN overdue_days > 90 THEN 'M3+'
  WHEN overdue_days > 30 THEN 'M1+'
  WHEN overdue THEN 'OVERDUE'
  WHEN ever_overdue THEN 'RECOVERED'
  ELSE 'CLEAN'
END
