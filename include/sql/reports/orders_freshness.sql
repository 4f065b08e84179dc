-- The newest synced order row (its source-side updatedAt): older than the report's freshness allows
-- before the end of the report date, and the e-mail says the sync is late.
SELECT MAX(freshest) AS freshest
FROM (
  SELECT MAX(updatedAt) AS freshest FROM {{ dataset }}.orders
  UNION ALL
  SELECT MAX(updatedAt) AS freshest FROM {{ dataset }}.orderdetails
) AS tables
