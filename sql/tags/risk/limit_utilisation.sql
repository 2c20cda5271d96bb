-- How much of the line is in use.
TAG (
  name limit_utilisation,
  title '额度使用率 Limit utilisation',
  description 'Active principal divided by the approved limit; NULL without a positive limit.',
  owner 'team:credit_risk',
  category_l1 risk,
  category_l2 exposure,
  value_type decimal,
  min 0,
);
CASE WHEN credit_limit > 0 THEN outstanding_principal / credit_limit END
