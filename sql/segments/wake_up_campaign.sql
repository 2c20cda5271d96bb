-- Wake-up campaign audience: the wake-up segment plus VIPs, minus anyone overdue now.
SEGMENT (
  name wake_up_campaign,
  kind combine,
  owner 'team:growth',
  description 'wake_up or vip_list, except overdue_now',
  shared_with (team:marketing),
  expression '(wake_up UNION vip_list) EXCEPT overdue_now',
);
