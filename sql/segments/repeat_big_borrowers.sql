-- Customers who drew at least two loans with 20,000+ principal in total (analyst SQL).
SEGMENT (
  name repeat_big_borrowers,
  kind sql,
  owner 'team:analytics',
  description 'Two or more disbursed loans totalling at least 20,000 as of the day',
  shared_with (team:growth),
);
WITH drawn AS (
  SELECT customer_id, count(*) AS loans, sum(principal) AS total
  FROM raw.loans
  WHERE disbursed_at < CAST(CAST($as_of AS DATE) + INTERVAL 1 DAY AS TIMESTAMP)
  GROUP BY customer_id
)
SELECT customer_id
FROM drawn
WHERE loans >= 2 AND total >= 20000
