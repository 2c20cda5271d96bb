-- The seed's example: after a drawdown, issue the repayment interest-free coupon, then
-- remind the customer by SMS and push on the first installment's due day.
RULE (
  name drawdown_repayment_coupon,
  owner 'team:marketing',
  description 'Drawdown -> repayment interest-free coupon; SMS and push on the first due day',
  trigger drawdown,
  priority 10,
  templates (
    repay_sms '【客群】您的{principal}元借款首期应还{amount_due}元，将于{due_date}到期。还款免息券已发放，请留意。',
    repay_push '首期{amount_due}元今天到期，按时还款保持良好信用',
  ),
);
TRUE
  -> issue_coupon repayment_interest_free
  && touch sms repay_sms at due_date 10:00
  && touch push repay_push at due_date 10:00
