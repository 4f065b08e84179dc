-- The headline's days: one row per day of the dbt model classicmodels_agg.daily_orders (days without
-- orders included) from 62 days before the report date to it; the report compares the report date
-- with the day before, the same weekday a week before, the 7 days before and the previous month.
SELECT
  order_date,
  orders,
  revenue,
  new_customers
FROM {{ agg_dataset }}.daily_orders
WHERE order_date BETWEEN DATE_SUB(@report_date, INTERVAL 62 DAY) AND @report_date
ORDER BY order_date
