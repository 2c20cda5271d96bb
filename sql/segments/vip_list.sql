-- The branch VIP list, uploaded by the marketing team (phone numbers, hashed on import).
-- The sample file holds synthetic numbers of demo customers made with seed 7 (the demo's);
-- with another seed nothing matches, so this example allows an empty result.
SEGMENT (
  name vip_list,
  kind file,
  owner 'team:marketing',
  description 'VIP customers listed by the branches (uploaded file, matched by phone)',
  shared_with (team:growth),
  file 'files/vip_list.csv',
  match phone,
  min_size 0,
  max_change_ratio 0.9,
  sync on,
  sync_schedule daily,
);
