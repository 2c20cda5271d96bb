-- Customers who have drawn a loan: eligible for the repayment coupon a drawdown rule issues.
SEGMENT (
  name borrowers,
  kind rule,
  owner 'team:marketing',
  description 'Customers with a disbursed loan (the audience of the drawdown rules)',
  rule 'drawn',
  min_size 0,
  sync on,
  sync_schedule '06:00',
);
