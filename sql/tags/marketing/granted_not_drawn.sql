-- The wake-up audience: approved but never drawn.
TAG (
  name granted_not_drawn,
  title '授信未支用 Granted, not drawn',
  description 'Credit granted and no loan disbursed yet: the audience for wake-up coupons.',
  owner 'team:growth',
  category_l1 marketing,
  category_l2 activation,
  value_type boolean,
);
credit_granted AND NOT drawn
