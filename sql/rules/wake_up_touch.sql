-- Wake-up: customers who entered the wake_up segment today get an SMS about their
-- coupon (high limits) or an in-app message; 10% are held out to measure the uplift.
RULE (
  name wake_up_touch,
  owner 'team:growth',
  description 'Segment wake_up entries: SMS for high limits, app message otherwise; 10% holdout',
  trigger segment wake_up,
  holdout 10%,
  exclusion_group wake_up,
  priority 5,
  max_touches_per_day 2,
  max_touches_per_week 5,
  templates (
    wake_sms '【客群】您有{credit_limit}元额度待使用，30天免息券已到账',
    wake_app '您的额度{credit_limit}元已就绪，今天借款享30天免息',
  ),
);
credit_limit >= 10000
  ? touch sms wake_sms at event +1d 10:00
  : touch app_message wake_app
